import Foundation
import ReelCore
import ReelPosix

/// Intake's second half: probes every local (`path`) reference of a manifest and applies the provider's file rules.
///
/// Decisions:
/// - Symlinks are followed (`stat`, not `lstat`): a studio's reference library commonly links files, and the
///   submitter could name the target directly anyway. What is refused is anything that is not a regular file
///   after resolution (directories, FIFOs, devices, sockets), before ffprobe ever opens it, so a FIFO cannot
///   hang intake. Files over the provider's largest limit (100 MB) are refused without probing.
/// - Each distinct path is stat'ed and probed once per call, however many jobs share it.
/// - sha256 is not computed here: the daemon hashes a file while it reads it for upload (that read happens
///   anyway, and the upload cache is keyed by it); hashing 100 MB videos at intake would double the I/O.
public enum ReferenceCheck {
    /// Reads a file's facts; the default is ``FFprobe/probe(_:)``. Tests wrap it to count calls.
    public typealias Prober = @Sendable (String) async throws -> MediaProbe

    /// How many probes run at once (each is an ffprobe process; the machine has 2 cores).
    public static let parallelProbes = 4

    /// Validates `data` and probes its local references: the whole intake check of one manifest file.
    public static func validate(_ data: [UInt8], now: Timestamp? = nil,
                                probe: @escaping Prober = { try await FFprobe.probe($0) }) async -> ManifestReport {
        let analysis = ManifestValidator.analyze(data, now: now)
        return await inspect(analysis.report, references: analysis.references, probe: probe)
    }

    /// Probes the `path` references among `references` (from ``ManifestValidator/analyze(_:now:)``), adds their
    /// issues to `report`, re-checks the ≤ 3 videos rule with the probed kinds, and fills each local reference's
    /// `kind`, `durationSeconds` and `bytes` in `report.jobs`. `jobs` is emptied if any error results.
    public static func inspect(_ report: ManifestReport, references: [ManifestValidator.ReferenceSite],
                               probe: @escaping Prober = { try await FFprobe.probe($0) }) async -> ManifestReport {
        let paths = Array(Set(references.compactMap { site -> String? in
            if case .path(let p) = site.source { return p } else { return nil }
        })).sorted()
        guard !paths.isEmpty else { return report }
        let facts = await probeAll(paths, probe: probe)

        var out = report
        var sites = references
        var issues: [ManifestIssue] = []
        for (n, site) in sites.enumerated() {
            guard case .path(let path) = site.source, let fact = facts[path] else { continue }
            issues += ManifestValidator.checkLocalReference(fact.probe, probeError: fact.error, pointer: site.pointer + "/path",
                                                            extension: ManifestValidator.fileExtension(path))
            sites[n].kind = fact.probe?.kind
            if out.jobs.indices.contains(site.job), out.jobs[site.job].references.indices.contains(site.index) {
                out.jobs[site.job].references[site.index].kind = fact.probe?.kind
                out.jobs[site.job].references[site.index].durationSeconds = fact.probe?.durationSeconds
                out.jobs[site.job].references[site.index].bytes = fact.probe?.bytes
            }
        }
        // Re-count videos per job now that local kinds are known; jobs already over the limit by their URLs alone
        // were reported by the validator.
        for job in Dictionary(grouping: sites, by: \.job).sorted(by: { $0.key < $1.key }) {
            let urlVideos = job.value.count { $0.kind == .video && !$0.isLocal }
            let videos = job.value.count { $0.kind == .video }
            guard urlVideos <= ProviderLimits.maxVideoReferences,
                  let issue = ManifestValidator.videoCountIssue(pointer: "/jobs/\(job.key)/references", videos: videos)
            else { continue }
            issues.append(issue)
        }
        var seen = Set(out.issues)
        let capped = out.issues.count > ManifestValidator.maxIssues
        for issue in issues where !capped && seen.insert(issue).inserted {
            guard out.issues.count < ManifestValidator.maxIssues else {
                out.issues.append(ManifestIssue(.error, "", "more than \(ManifestValidator.maxIssues) problems; the rest are not listed",
                                                hint: "fix the problems above and validate again"))
                break
            }
            out.issues.append(issue)
        }
        if issues.contains(where: { $0.severity == .error }) || !out.errors.isEmpty { out.jobs = [] }
        return out
    }

    struct Fact: Sendable {
        var probe: MediaProbe?
        var error: String?
    }

    /// stat and probe each path, a few at a time.
    static func probeAll(_ paths: [String], probe: @escaping Prober) async -> [String: Fact] {
        await withTaskGroup(of: (String, Fact).self) { group in
            var results: [String: Fact] = [:]
            var next = paths.makeIterator()
            func start(_ group: inout TaskGroup<(String, Fact)>) {
                guard let path = next.next() else { return }
                group.addTask { (path, await fact(path, probe: probe)) }
            }
            for _ in 0..<parallelProbes { start(&group) }
            while let (path, fact) = await group.next() {
                results[path] = fact
                start(&group)
            }
            return results
        }
    }

    static func fact(_ path: String, probe: Prober) async -> Fact {
        switch await statFile(path) {
        case .failure(let message):
            return Fact(error: message)
        case .success(let size):
            let limit = Int64(max(ProviderLimits.maxVideoReferenceBytes, ProviderLimits.maxImageReferenceBytes))
            guard size <= limit else {
                return Fact(error: "the file is \(size >> 20) MB; no reference may exceed \(limit >> 20) MB")
            }
            do {
                var facts = try await probe(path)
                facts.bytes = size  // the size of the file itself, also when `path` is a symlink
                return Fact(probe: facts)
            } catch {
                return Fact(error: "\(error)")
            }
        }
    }

    enum StatResult: Sendable {
        case success(Int64)
        case failure(String)
    }

    /// `stat(2)` (following symlinks) on a dedicated file thread, so a slow filesystem cannot stall the cooperative
    /// pool.
    static func statFile(_ path: String) async -> StatResult {
        await BlockingThreads.files.run { () -> StatResult in
            let st: stat
            do throws(PosixError) {
                st = try Posix.stat(path)
            } catch {
                let reason = switch error.code {
                case ENOENT: "no such file"
                case EACCES: "permission denied (the reel service user must be able to read it)"
                case ENOTDIR: "a component of the path is not a directory"
                case ELOOP: "too many levels of symbolic links"
                default: error.reason
                }
                return .failure("\(path): \(reason)")
            }
            let type = st.st_mode & S_IFMT
            guard type == S_IFREG else {
                let what = switch type {
                case S_IFDIR: "a directory"
                case S_IFIFO: "a FIFO"
                case S_IFCHR, S_IFBLK: "a device"
                case S_IFSOCK: "a socket"
                default: "not a regular file"
                }
                return .failure("\(path) is \(what), not a regular file")
            }
            return .success(Int64(st.st_size))
        }
    }
}

extension ManifestValidator.ReferenceSite {
    var isLocal: Bool { if case .path = source { true } else { false } }
}
