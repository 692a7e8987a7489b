import Foundation
import NIOCore
import NIOHTTP1
import ReelCore
import ReelHTTPServer
import Synchronization

/// Test-only endpoints under `/__sandbox/`: faults, the request journal, the virtual clock, counters.
extension Sandbox {
    func faultsEndpoint(_ request: HTTPRequest) -> HTTPResponse {
        switch request.method {
        case .GET:
            break
        case .POST, .PUT:
            let scenario: FaultScenario
            do {
                scenario = try FaultScenario.parse(Data(request.body.readableBytesView))
            } catch {
                return Self.invalid("\(error)")
            }
            state.withLock { s in
                if request.method == .PUT { s.faults.rules = [] }
                s.faults.rules += scenario.rules
            }
        case .DELETE:
            state.withLock { $0.faults.rules = [] }
        default:
            return Self.error(.methodNotAllowed, "MethodNotAllowed", "use GET, POST (append), PUT (replace) or DELETE")
        }
        let rules = state.withLock { $0.faults.rules }
        let data = (try? HTTPResponse.jsonEncoder().encode(FaultScenario(rules: rules))) ?? Data()
        var object = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        object["faults"] = FaultName.allCases.map { ["name": $0.rawValue, "phase": $0.phase.rawValue, "summary": $0.summary] }
        return Self.json(object)
    }

    func journalEndpoint(_ request: HTTPRequest) -> HTTPResponse {
        let since = request.query["since"].flatMap(Int.init) ?? 0
        let (entries, next) = state.withLock { s in (s.journal.filter { $0.seq > since }, s.nextSeq) }
        struct Page: Encodable {
            var requests: [JournalEntry]
            var next: Int
        }
        return .json(Page(requests: entries, next: next))
    }

    func clockEndpoint(_ request: HTTPRequest) -> HTTPResponse {
        if request.method == .POST {
            guard let body = try? JSONSerialization.jsonObject(with: Data(request.body.readableBytesView)) as? [String: Any],
                  let n = (body["advance_s"] as? NSNumber)?.doubleValue, n >= 0 else {
                return Self.invalid("body must be {\"advance_s\": N} with N >= 0 (sandbox seconds)")
            }
            state.withLock { $0.advanced += n }
        } else if request.method != .GET {
            return Self.error(.methodNotAllowed, "MethodNotAllowed", "use GET or POST")
        }
        let (t, advanced) = state.withLock { s in (sandboxNow(s), s.advanced) }
        return Self.json([
            "now_s": t, "advanced_s": advanced, "time_scale": options.timeScale,
            "wall_time": ProviderTime.format(wallTime(t)),
        ])
    }

    /// `GET /__sandbox/tasks`: every task the sandbox holds, for tests that check what was created (the prompt
    /// and options a task was made with, which the documented task list never shows), with its account and the
    /// protocol that created it. Oldest first.
    func tasksEndpoint() -> HTTPResponse {
        state.withLock { s in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            let tasks: [[String: Any]] = s.order.compactMap { s.tasks[$0] }.map { task in
                var o: [String: Any] = [
                    "task_id": task.id, "prompt": task.prompt, "model": task.model.rawValue,
                    "status": task.status(at: t, taskTTL: options.taskTTL).rawValue, "request_id": task.requestID,
                    "account": task.account, "protocol": task.via.rawValue, "size": task.size,
                    "duration": task.duration, "references": task.requested.references,
                ]
                o["idempotency_key"] = task.idempotencyKey
                o["seed"] = task.requested.seed
                o["negative_prompt"] = task.requested.negativePrompt
                o["shot_type"] = task.requested.shotType
                o["watermark"] = task.requested.watermark
                o["audio"] = task.requested.audio
                return o
            }
            return Self.json(["tasks": tasks])
        }
    }

    /// `GET /__sandbox/gateway/starts`: gateway start calls per (account, `idempotency-key`) and the jobs they
    /// made, so a test can prove that no key rendered twice.
    func gatewayStartsEndpoint() -> HTTPResponse {
        state.withLock { s in
            let jobsPerScope = Dictionary(grouping: s.tasks.values.filter { $0.idempotencyKey != nil }) {
                IdempotencyScope(account: $0.account, key: $0.idempotencyKey!)
            }
            let rows: [[String: Any]] = s.startsByIdempotencyKey.keys.sorted { ($0.account, $0.key) < ($1.account, $1.key) }
                .map { scope in
                    var row: [String: Any] = ["account": scope.account, "idempotency_key": scope.key,
                                              "starts": s.startsByIdempotencyKey[scope] ?? 0,
                                              "jobs": jobsPerScope[scope]?.count ?? 0]
                    row["job_id"] = s.jobsByIdempotencyKey[scope]
                    return row
                }
            let unkeyed = s.tasks.values.filter { $0.via == .gateway && $0.idempotencyKey == nil }.count
            return Self.json(["keys": rows, "jobs_without_key": unkeyed])
        }
    }

    func statsEndpoint() -> HTTPResponse {
        state.withLock { s in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            var byStatus: [String: Int] = [:]
            var accounts: [String: [String: Any]] = [:]
            for name in Set(s.tasks.values.map(\.account)).union(options.accounts.map(\.name)) {
                let mine = s.tasks.values.filter { $0.account == name }
                var statuses: [String: Int] = [:]
                for task in mine { statuses[task.status(at: t, taskTTL: options.taskTTL).rawValue, default: 0] += 1 }
                var active: [String: Int] = [:]
                for model in RenderModel.allCases {
                    active[model.rawValue] = s.active(at: t, in: PoolKey(account: name, model: model))
                }
                accounts[name] = ["tasks": statuses, "active": active,
                                  "queued": s.queue.filter { s.tasks[$0]?.account == name }.count,
                                  "gateway_jobs": mine.filter { $0.via == .gateway }.count]
            }
            for task in s.tasks.values { byStatus[task.status(at: t, taskTTL: options.taskTTL).rawValue, default: 0] += 1 }
            return Self.json([
                "tasks": byStatus, "counters": s.counters, "active": s.active(at: t), "queued": s.queue.count,
                "requests": s.nextSeq - 1, "accounts": accounts,
            ])
        }
    }
}
