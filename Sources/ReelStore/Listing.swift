import GRDB
import ReelCore

/// What a listing shows of a job: the columns of `GET /v1/jobs`, without the spec's prompt and references.
///
/// A page of full `JobRow`s decodes each job's spec from JSON, which was most of the cost of a 100-row page; a
/// summary is read from plain columns by position, all of them held by the `jobs_listing` index.
public struct JobSummary: Sendable, Hashable {
    public var key: JobKey
    public var state: JobState
    public var priority: Priority
    public var model: RenderModel
    public var resolution: Resolution
    public var aspectRatio: AspectRatio
    public var durationSeconds: Int
    /// Output plus billed input seconds, as estimated at intake (`JobSpec.estimatedBilledSeconds`).
    public var estimatedBilledSeconds: Double
    public var attempt: Int
    public var taskID: String?
    public var reason: String?
    public var holdReason: String?
    public var deadline: Timestamp?
    public var outputPath: String?
    public var outputSHA256: String?
    public var costUSD: Double?
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
}

/// A page of `listJobSummaries`.
public struct JobSummaryPage: Sendable {
    public var rows: [JobSummary]
    /// Pass to the next call; nil on the last page.
    public var nextCursor: String?
}

extension JobRow {
    /// The listing columns of this row.
    public var summary: JobSummary {
        JobSummary(key: key, state: state, priority: priority, model: spec.model, resolution: spec.resolution,
                   aspectRatio: spec.aspectRatio, durationSeconds: spec.durationSeconds,
                   estimatedBilledSeconds: spec.estimatedBilledSeconds, attempt: attempt, taskID: taskID,
                   reason: reason, holdReason: holdReason, deadline: deadline, outputPath: outputPath,
                   outputSHA256: outputSHA256, costUSD: costUSD, createdAt: createdAt, updatedAt: updatedAt)
    }
}

extension Store {
    /// `listJobs` for listings: the same order, filters and cursors, but summaries instead of full rows.
    public func listJobSummaries(_ query: JobQuery) async throws -> JobSummaryPage {
        let (condition, arguments) = Self.listFilter(query)
        let sql = Self.summarySQL(condition, byState: query.state != nil)
        return try await read { db in
            let statement = try db.cachedStatement(sql: sql)
            let cursor = try Row.fetchCursor(statement, arguments: arguments + [query.limit + 1])
            var rows: [JobSummary] = []
            rows.reserveCapacity(query.limit + 1)
            while let r = try cursor.next() {
                rows.append(JobSummary(
                    key: JobKey(batch: r[0], id: r[1]), state: try decodeEnum(JobState.self, r[2], "state"),
                    priority: try decodeEnum(Priority.self, r[3], "priority"),
                    model: try decodeEnum(RenderModel.self, r[4], "model"),
                    resolution: try decodeEnum(Resolution.self, r[5], "resolution"),
                    aspectRatio: try decodeEnum(AspectRatio.self, r[6], "aspect_ratio"), durationSeconds: r[7],
                    estimatedBilledSeconds: r[8], attempt: r[9], taskID: r[10], reason: r[11], holdReason: r[12],
                    deadline: r[13], outputPath: r[14], outputSHA256: r[15], costUSD: r[16], createdAt: r[17],
                    updatedAt: r[18]))
            }
            let (page, next) = query.page(rows, key: \.key)
            return JobSummaryPage(rows: page, nextCursor: next)
        }
    }

    /// The statement of a summary page (`condition` from `listFilter`; the limit is its last argument).
    ///
    /// Without a state filter the page is a range scan of the covering `jobs_listing` index, named so the
    /// planner cannot pick the `(batch, id)` key index, which has the same order but sends every row to the
    /// table. A state filter goes through `jobs_state_key` (state first), reading the rows it lists from the table.
    static func summarySQL(_ condition: String, byState: Bool) -> String {
        """
        SELECT batch, id, state, priority, model, resolution, aspect_ratio, duration_s, est_billed_seconds, attempt,
               task_id, reason, hold_reason, deadline, output_path, output_sha256, cost_usd, created_at, updated_at
        FROM jobs \(byState ? "" : "INDEXED BY jobs_listing ")WHERE \(condition) ORDER BY batch, id LIMIT ?
        """
    }
}
