import GRDB
import ReelCore
@testable import ReelStore
import Testing

/// Listing must stay fast on 100,000 jobs at any depth: every page shape is an index range scan, never a scan of
/// the table or a sort.
@Test(arguments: [
    (nil, nil, nil), (JobState.held, nil, nil), (nil, "b", nil), (.held, "b", nil),
    (nil, nil, JobKey(batch: "b", id: "x")), (.held, nil, JobKey(batch: "b", id: "x")),
    (nil, "b", JobKey(batch: "b", id: "x")), (.held, "b", JobKey(batch: "b", id: "x")),
] as [(JobState?, String?, JobKey?)])
func listingPagesAreIndexRangeScans(state: JobState?, batch: String?, after: JobKey?) async throws {
    try await withStore { store, _ in
        var query = try JobQuery(state: state, batch: batch, limit: 100)
        query.after = after
        let (condition, arguments) = Store.listFilter(query)
        let plan = try await store.queryPlan(
            "SELECT * FROM jobs WHERE \(condition) ORDER BY batch, id LIMIT 101", arguments)
        #expect(plan.count == 1, "\(plan)")
        let ordered = "SCAN jobs USING INDEX sqlite_autoindex_jobs_1"  // first page, no filter: walk the key index
        #expect(plan.allSatisfy { $0.hasPrefix("SEARCH jobs USING INDEX") || $0 == ordered }, "\(plan)")
    }
}

/// A summary page without a state filter reads the covering `jobs_listing` index only: no row of the table is
/// visited (SQLite says COVERING INDEX), and no spec is parsed. With a state filter it is `jobs_state_key`.
@Test(arguments: [
    (nil, nil, nil), (nil, "b", nil), (nil, nil, JobKey(batch: "b", id: "x")), (nil, "b", JobKey(batch: "b", id: "x")),
    (nil, "b", JobKey(batch: "a", id: "x")), (JobState.held, nil, JobKey(batch: "b", id: "x")),
] as [(JobState?, String?, JobKey?)])
func summaryPagesReadOnlyTheListingIndex(state: JobState?, batch: String?, after: JobKey?) async throws {
    try await withStore { store, _ in
        try await ingest(store, "b", ["w", "x", "y"])
        var query = try JobQuery(state: state, batch: batch, limit: 100)
        query.after = after
        let (condition, arguments) = Store.listFilter(query)
        let plan = try await store.queryPlan(Store.summarySQL(condition, byState: state != nil), arguments + [101])
        #expect(plan.count == 1, "\(plan)")
        let expected = state == nil ? ["SEARCH jobs USING COVERING INDEX jobs_listing", "SCAN jobs USING COVERING INDEX jobs_listing"]
            : ["SEARCH jobs USING INDEX jobs_state_key"]
        #expect(plan.allSatisfy { p in expected.contains { p.hasPrefix($0) } }, "\(plan)")
    }
}
