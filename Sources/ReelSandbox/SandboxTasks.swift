import Foundation
import NIOCore
import NIOHTTP1
import ReelCore
import ReelHTTPServer
import Synchronization

extension Sandbox {
    static let videoExtensions: Set<String> = ["mp4", "mov"]

    /// Whether a reference is a video, by the extension of its path (or of the uploaded file's key).
    static func isVideo(_ url: String) -> Bool {
        let path = url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
        guard let dot = path.lastIndex(of: ".") else { return false }
        return videoExtensions.contains(path[path.index(after: dot)...].lowercased())
    }

    /// A JSON integer (integral numbers only; booleans are not numbers here).
    static func integer(_ value: Any?) -> Int? {
        guard let n = value as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        let d = n.doubleValue
        guard d == d.rounded(), abs(d) < 1e15 else { return nil }
        return Int(d)
    }

    static func invalid(_ message: String) -> HTTPResponse { error(.badRequest, "InvalidParameter", message) }

    // MARK: create

    /// A create request, checked: everything the task engine needs.
    struct TaskSpec: Sendable {
        var model: RenderModel
        var prompt: String
        var size: String
        /// Whether `size` is one of the ten allowed (a bad size reaches here only with `--bad-size fail`).
        var sizeAllowed: Bool
        var duration: Int
        var audio: Bool
        var references: [String]
        var videos: [String]
        var requested: RequestedOptions
    }

    enum Parsed {
        case spec(TaskSpec)
        case refused(Refusal)
    }

    /// `POST /api/v1/services/aigc/video-generation/video-synthesis` (reference §1.3, §1.4).
    func create(_ request: HTTPRequest, _ entry: inout JournalEntry) async -> HTTPResponse {
        let caller: Caller
        switch authorize(request, &entry) {
        case .refused(let refusal): return refusal.dashScope
        case .caller(let c): caller = c
        }
        let ossHeader = request.headers.first(name: "x-dashscope-ossresourceresolve")?.lowercased() == "enable"
        entry.ossHeader = ossHeader
        guard request.headers.first(name: "x-dashscope-async")?.lowercased() == "enable" else {
            return Self.error(.forbidden, "AccessDenied", "current user api does not support synchronous calls")
        }
        guard let body = try? JSONSerialization.jsonObject(with: Data(request.body.readableBytesView)),
              let object = body as? [String: Any] else {
            return Self.invalid("The request body is not a valid JSON object.")
        }
        let spec: TaskSpec
        switch parseCreate(object, ossHeader: ossHeader, &entry) {
        case .refused(let refusal): return refusal.dashScope
        case .spec(let s): spec = s
        }
        switch await admit(spec, caller: caller, via: .dashscope, idempotencyKey: nil, &entry) {
        case .refused(let refusal):
            return refusal.dashScope
        case .reset, .createdThenReset:
            return .reset
        case .createdThenFailed(let task, let refusal):
            // The task exists, so this answer carries the create's request id, the one its list row shows
            // (that a 500 carries it is an inference; the documents only say the row has the create's id).
            return Self.json(["code": refusal.code, "request_id": task.requestID, "message": refusal.message],
                             status: refusal.status)
        case .created(let task, _):
            return Self.json(["output": ["task_status": "PENDING", "task_id": task.id], "request_id": task.requestID])
        }
    }

    /// Checks a DashScope create body (reference §4.2, in that order).
    func parseCreate(_ object: [String: Any], ossHeader: Bool, _ entry: inout JournalEntry) -> Parsed {
        guard let modelName = object["model"] as? String, !modelName.isEmpty else {
            return .refused(Refusal(status: .badRequest, code: "BadRequest.EmptyModel", message: "Required parameter \"model\" missing from request."))
        }
        entry.model = modelName
        guard let input = object["input"] as? [String: Any] else {
            return .refused(Refusal(status: .badRequest, code: "BadRequest.EmptyInput", message: "Required input parameter missing from request."))
        }
        guard let model = RenderModel(rawValue: modelName) else {
            return .refused(Refusal(status: .notFound, code: "ModelNotFound", message: "Model not exist."))
        }
        guard let rawPrompt = input["prompt"] as? String, !rawPrompt.trimmingCharacters(in: .whitespaces).isEmpty else {
            return .refused(.invalid("Field required: input.prompt"))
        }
        let prompt = String(rawPrompt.prefix(ProviderLimits.maxPromptCharacters))

        // References.
        let field = input["reference_urls"] != nil ? "reference_urls" : "reference_video_urls"
        entry.referenceField = input[field] != nil ? field : nil
        guard let refsAny = input[field] else { return .refused(.invalid("Field required: input.reference_urls")) }
        guard let refs = refsAny as? [String] else { return .refused(.invalid("input.\(field) must be an array of URL strings.")) }
        guard !refs.isEmpty else { return .refused(.invalid("input.\(field) must not be empty.")) }
        guard refs.count <= ProviderLimits.maxReferences else {
            return .refused(.invalid("input.\(field) allows at most \(ProviderLimits.maxReferences) references, got \(refs.count)."))
        }
        let videos = refs.filter(Self.isVideo)
        guard videos.count <= ProviderLimits.maxVideoReferences else {
            return .refused(.invalid("input.\(field) allows at most \(ProviderLimits.maxVideoReferences) videos, got \(videos.count)."))
        }
        if field == "reference_video_urls", videos.count != refs.count {
            return .refused(.invalid("input.reference_video_urls accepts videos (mp4, mov) only."))
        }
        for url in refs {
            let lower = url.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") || lower.hasPrefix("oss://") else {
                return .refused(Refusal(status: .badRequest, code: "InvalidURL", message: "Invalid URL provided in your request: \(url)"))
            }
            if lower.hasPrefix("oss://"), !ossHeader {
                return .refused(.invalid("oss:// URLs need the header X-DashScope-OssResourceResolve: enable."))
            }
        }

        var requested = RequestedOptions(negativePrompt: input["negative_prompt"] as? String, references: refs)

        // Parameters.
        let params: [String: Any]
        switch object["parameters"] {
        case nil: params = [:]
        case let p as [String: Any]: params = p
        default: return .refused(.invalid("parameters must be a JSON object."))
        }
        var duration = 5
        if let d = params["duration"] {
            guard let v = Self.integer(d), ProviderLimits.durationRange.contains(v) else {
                return .refused(.invalid("parameters.duration must be an integer in [2, 10]."))
            }
            duration = v
        }
        if let s = params["seed"] {
            guard let v = Self.integer(s), ProviderLimits.seedRange.contains(v) else {
                return .refused(.invalid("parameters.seed must be an integer in [0, 2147483647]."))
            }
            requested.seed = v
        }
        if let s = params["shot_type"] {
            guard let v = s as? String, ShotType(rawValue: v) != nil else {
                return .refused(.invalid("parameters.shot_type must be \"single\" or \"multi\"."))
            }
            requested.shotType = v
        }
        if let w = params["watermark"], !(w is Bool) || Self.integer(w) != nil {
            return .refused(.invalid("parameters.watermark must be a boolean."))
        }
        requested.watermark = params["watermark"] as? Bool
        var audio = true
        if let a = params["audio"] {
            guard let v = a as? Bool, Self.integer(a) == nil else { return .refused(.invalid("parameters.audio must be a boolean.")) }
            requested.audio = v
            if model.supportsSilentOutput { audio = v }   // standard r2v always has audio; the flag is ignored
        }
        let size = params["size"] as? String ?? "1920*1080"
        if params["size"] != nil, !(params["size"] is String) {
            return .refused(.invalid("parameters.size must be a string such as \"1280*720\"."))
        }
        let tier = FrameSize.tier(ofProviderSize: size)
        if tier == nil, options.badSize == .reject {
            return .refused(.invalid("parameters.size \"\(size)\" is not supported; use one of "
                + FrameSize.allowed.map(\.2.providerString).joined(separator: ", ") + "."))
        }
        if prompt.contains("__BLOCK_INPUT__") {
            return .refused(Refusal(status: .badRequest, code: "DataInspectionFailed", message: "Input data may contain inappropriate content."))
        }

        return .spec(TaskSpec(model: model, prompt: prompt, size: size, sizeAllowed: tier != nil, duration: duration,
                              audio: audio, references: refs, videos: videos, requested: requested))
    }

    /// What a create call came to.
    enum Admission {
        /// No task was made.
        case refused(Refusal)
        /// The connection was reset; no task was made.
        case reset
        /// A task was made (or, for a repeated gateway start, found).
        case created(SandboxTask, deduplicated: Bool)
        /// A task was made, but the answer is an error (`create_error_after_create`).
        case createdThenFailed(SandboxTask, Refusal)
        /// A task was made, but the connection was reset (`create_reset_after_create`).
        case createdThenReset(SandboxTask)
    }

    /// The task engine's create, shared by both protocols: create faults, the create rate and the concurrency of
    /// the (account, model) pool, the task's fate; a gateway start with an `idempotency-key` the account already
    /// used answers the job that key made (no second render).
    func admit(_ spec: TaskSpec, caller: Caller, via: TaskProtocol, idempotencyKey: String?,
               _ entry: inout JournalEntry) async -> Admission {
        let prompt = spec.prompt
        let modelName = spec.model.rawValue
        let model = spec.model
        let size = spec.size
        let refs = spec.references
        // Billing facts of the references.
        let videoSeconds: [Double] = state.withLock { s in
            spec.videos.map { url in
                if url.lowercased().hasPrefix("oss://") { return s.uploads[String(url.dropFirst(6))]?.videoSeconds ?? 10 }
                return HTTPRequest(method: .GET, uri: url).query["duration"].flatMap(Double.init) ?? 10
            }
        }
        let missingUpload: Bool = state.withLock { s in
            refs.contains { $0.lowercased().hasPrefix("oss://") && s.uploads[String($0.dropFirst(6))] == nil }
        }

        let realNow = options.rateClock?() ?? realElapsed()
        let requestID = Self.requestID()
        let frame = FrameSize(providerString: size) ?? FrameSize(width: 1280, height: 720)
        let pool = PoolKey(account: caller.account, model: model)
        let scope = idempotencyKey.map { IdempotencyScope(account: caller.account, key: $0) }
        let decision: (Admission, Double?) = state.withLock { s in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            if let scope { s.startsByIdempotencyKey[scope, default: 0] += 1 }
            let fired = s.faults.fire(.create, prompt: prompt, model: modelName, account: caller.account, random: &s.random)
            func has(_ f: FaultName) -> FiredFault? { fired.first { $0.name == f } }
            let delay = has(.createDelay).map { $0.rule?.seconds ?? 5 }
            entry.fault = fired.map(\.name.rawValue).joined(separator: ",").nilIfEmpty
            for f in fired { s.count("fault." + f.name.rawValue) }
            if has(.inputInspection) != nil {
                return (.refused(Refusal(status: .badRequest, code: "DataInspectionFailed",
                                         message: "Input data may contain inappropriate content.")), delay)
            }
            if has(.createIPInfringement) != nil {
                return (.refused(Refusal(status: .badRequest, code: "IPInfringementSuspect",
                                         message: "Input data is suspected of being involved in IP infringement.")), delay)
            }
            if let f = has(.createThrottle) {
                return (.refused(.throttled("Throttling.RateQuota", retryAfter: f.rule?.retryAfter)), delay)
            }
            if has(.createError) != nil { return (.refused(.internalError()), delay) }
            if has(.createReset) != nil { return (.reset, delay) }
            guard SandboxState.admit(&s.recentCreates[pool, default: []], now: realNow, limit: options.submitRPS) else {
                s.count("throttled.create_rps")
                return (.refused(.throttled("Throttling.RateQuota", retryAfter: nil)), delay)
            }
            if let scope, let id = s.jobsByIdempotencyKey[scope], let existing = s.tasks[id] {
                s.count("gateway.deduplicated_starts")
                entry.taskID = existing.id
                return (.created(existing, deduplicated: true), delay)
            }
            let full = s.queue.contains { s.tasks[$0]?.pool == pool } || s.active(at: t, in: pool) >= options.concurrency
            if full, options.overflow == .throttle {
                s.count("throttled.concurrency")
                return (.refused(.throttled("Throttling", retryAfter: nil)), delay)
            }
            let outcomes = s.faults.fire(.outcome, prompt: prompt, model: modelName, account: caller.account, random: &s.random)
            func outcome(_ f: FaultName) -> FiredFault? { outcomes.first { $0.name == f } }
            for f in outcomes { s.count("fault." + f.name.rawValue) }
            var result = TaskOutcome.succeed(.normal)
            if !spec.sizeAllowed {
                result = .fail(code: "InvalidParameter", message: "The size is not match the allowed sizes: \(size)")
            } else if missingUpload {
                result = .fail(code: "InvalidParameter.DataInspection", message: "Unable to download the media resource during the data inspection process.")
            } else if outcome(.outputInspection) != nil {
                result = .fail(code: "DataInspectionFailed", message: "Output data may contain inappropriate content.")
            } else if outcome(.ipInfringement) != nil {
                result = .fail(code: "IPInfringementSuspect", message: "Output data is suspected of being involved in IP infringement.")
            } else if outcome(.failInternal) != nil {
                result = .fail(code: "InternalError", message: "An internal error has occured, please try again later or contact service support.")
            } else if outcome(.failInvalidParameter) != nil {
                result = .fail(code: "InvalidParameter", message: "The size is not match xxxxxx")
            } else if outcome(.unknownAfterRunning) != nil {
                result = .unknown
            } else if outcome(.wrongSize) != nil {
                result = .succeed(.wrongSize)
            } else if outcome(.wrongDuration) != nil {
                result = .succeed(.wrongDuration)
            }
            let r = options.runTime
            let runTime = options.runTimeModel.map {
                $0.draw(model: model, resolution: FrameSize.tier(ofProviderSize: size) ?? .p720, durationSeconds: spec.duration,
                        videoSeconds: videoSeconds.reduce(0, +), random: &s.random)
            } ?? r.lowerBound + s.random.unit() * (r.upperBound - r.lowerBound)
            let queueDelay = outcome(.slowQueue).map { $0.rule?.seconds ?? 3600 } ?? options.queueDelay
            let rows = s.faults.fire(.row, prompt: prompt, model: modelName, account: caller.account, random: &s.random)
            for f in rows { s.count("fault." + f.name.rawValue) }
            let allFired = (fired + outcomes + rows).map(\.name.rawValue).joined(separator: ",")
            entry.fault = allFired.isEmpty ? nil : allFired
            var listFaults = ListRowFaults()
            for f in rows {
                switch f.name {
                case .listOmit: listFaults.omit = true
                case .listLate: listFaults.lateSeconds = max(listFaults.lateSeconds ?? 0, f.rule?.seconds ?? 60)
                case .listMalformedRow: listFaults.malformed = true
                default: break
                }
            }
            s.createdCount += 1
            let id = via == .gateway ? "gwjob_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
                : UUID().uuidString.lowercased()
            var task = SandboxTask(
                id: id, account: caller.account, via: via, requested: spec.requested, idempotencyKey: idempotencyKey,
                requestID: requestID, apiKeyID: Self.apiKeyID(caller.key),
                number: s.createdCount, model: model, prompt: prompt, size: size, frame: frame,
                duration: spec.duration, audio: spec.audio, referenceCount: refs.count,
                billedInputSeconds: Billing.billedInputSeconds(videoSeconds: videoSeconds, referenceCount: refs.count),
                createdAt: t, queueDelay: queueDelay, runTime: runTime, outcome: result, listFaults: listFaults,
                admittedAt: full ? nil : t, canceledAt: nil)
            if outcome(.spontaneousCancel) != nil { task.canceledAt = t + min(queueDelay, 1) / 2 }
            s.tasks[task.id] = task
            s.order.append(task.id)
            if full { s.queue.append(task.id) }
            if let scope { s.jobsByIdempotencyKey[scope] = task.id }
            s.count("tasks.created")
            entry.taskID = task.id
            if has(.createErrorAfterCreate) != nil { return (.createdThenFailed(task, .internalError()), delay) }
            if has(.createResetAfterCreate) != nil { return (.createdThenReset(task), delay) }
            return (.created(task, deduplicated: false), delay)
        }
        switch decision.0 {
        case .created(let task, deduplicated: false), .createdThenFailed(let task, _), .createdThenReset(let task):
            if case .succeed = task.outcome {
                media.prepare(ResultMedia.Key(frame: task.resultFrame, seconds: task.resultSeconds, audio: task.audio))
            }
        default:
            break
        }
        if let delay = decision.1 { try? await Task.sleep(for: .milliseconds(Int(delay * 1000))) }
        return decision.0
    }

    // MARK: query

    func query(_ request: HTTPRequest, id: String, _ entry: inout JournalEntry) -> HTTPResponse {
        let caller: Caller
        switch authorize(request, &entry) {
        case .refused(let refusal): return refusal.dashScope
        case .caller(let c): caller = c
        }
        let realNow = options.rateClock?() ?? realElapsed()
        let base = Self.base(request)
        return state.withLock { s -> HTTPResponse in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            let (task, fired) = s.queried(id, account: caller.account, via: .dashscope, entry: &entry)
            entry.model = task?.model.rawValue
            func has(_ f: FaultName) -> FiredFault? { fired.first { $0.name == f } }
            if let f = has(.queryThrottle) { return Self.throttled("Throttling.RateQuota", retryAfter: f.rule?.retryAfter) }
            guard SandboxState.admit(&s.recentQueries[caller.account, default: []], now: realNow, limit: options.queryQPS) else {
                s.count("throttled.query_qps")
                return Self.throttled("Throttling.RateQuota", retryAfter: nil)
            }
            s.count("queries")
            if has(.queryReset) != nil { return .reset }
            if has(.query503) != nil {
                return Self.error(.serviceUnavailable, "ServiceUnavailable",
                                  "Service temporarily unavailable, possibly overloaded or not ready.")
            }
            if has(.query504) != nil { return .text("<html><body>504 Gateway Time-out</body></html>\n", status: .gatewayTimeout, contentType: "text/html") }
            if has(.malformedNoOutput) != nil { return Self.json([:]) }
            guard let task else { return Self.json(["output": ["task_id": id, "task_status": "UNKNOWN"]]) }
            var output = taskOutput(task, at: t, base: base)
            if has(.malformedNoTaskID) != nil { output["task_id"] = nil }
            if has(.malformedStatus) != nil { output["task_status"] = "SUSPENDED" }
            var body: [String: Any] = ["output": output]
            if task.status(at: t, taskTTL: options.taskTTL) == .succeeded {
                var usage = usage(of: task)
                if has(.malformedUsageStrings) != nil { usage = usage.mapValues { "\($0)" } }
                body["usage"] = usage
            }
            return Self.json(body)
        }
    }

    func usage(of task: SandboxTask) -> [String: Any] {
        [
            "duration": Double(task.duration) + task.billedInputSeconds,
            "input_video_duration": task.billedInputSeconds,
            "output_video_duration": task.duration,
            "size": task.size,
            "SR": task.frame.height == task.frame.width ? (task.frame.width >= 1440 ? 1080 : 720)
                : min(task.frame.width, task.frame.height) >= 1080 ? 1080 : 720,
            "video_count": 1,
        ]
    }

    /// `output` of a task at sandbox time `t` (reference §1.5: fields grow with the state).
    func taskOutput(_ task: SandboxTask, at t: Double, base: String) -> [String: Any] {
        let status = task.status(at: t, taskTTL: options.taskTTL)
        var o: [String: Any] = ["task_id": task.id, "task_status": status.rawValue]
        if status == .unknown { return o }
        o["submit_time"] = ProviderTime.format(wallTime(task.createdAt))
        if let started = task.startedAt(by: t) { o["scheduled_time"] = ProviderTime.format(wallTime(started)) }
        if let ended = task.endedAt(by: t, taskTTL: options.taskTTL) { o["end_time"] = ProviderTime.format(wallTime(ended)) }
        switch status {
        case .succeeded:
            o["orig_prompt"] = task.prompt
            o["video_url"] = videoURL(task, base: base)
        case .failed:
            if case .fail(let code, let message) = task.outcome {
                o["code"] = code
                o["message"] = message
            }
        default:
            break
        }
        return o
    }

    func videoURL(_ task: SandboxTask, base: String) -> String {
        let expires = Int(wallTime((task.endsAt ?? 0) + options.urlTTL))
        return "\(base)\(Self.resultPrefix)\(task.id).mp4?Expires=\(expires)&OSSAccessKeyId=LTAI5tSandbox"
            + "&Signature=\(signature(task.id, expires))"
    }

    /// A stable keyed digest (FNV-1a over secret, id and expiry) standing in for OSS's HMAC signature.
    func signature(_ id: String, _ expires: Int) -> String {
        String(Self.fnv1a("\(urlSecret)|\(id)|\(expires)"), radix: 16)
    }

    /// 64-bit FNV-1a of a string's UTF-8 bytes.
    static func fnv1a(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    // MARK: cancel

    func cancel(_ request: HTTPRequest, id: String, _ entry: inout JournalEntry) -> HTTPResponse {
        let caller: Caller
        switch authorize(request, &entry) {
        case .refused(let refusal): return refusal.dashScope
        case .caller(let c): caller = c
        }
        let realNow = options.rateClock?() ?? realElapsed()
        return state.withLock { s in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            // Cancel shares the account's query budget (reference §1.9).
            guard SandboxState.admit(&s.recentQueries[caller.account, default: []], now: realNow, limit: options.queryQPS) else {
                s.count("throttled.query_qps")
                return Self.throttled("Throttling.RateQuota", retryAfter: nil)
            }
            guard let task = s.tasks[id], task.account == caller.account, task.via == .dashscope,
                  task.status(at: t, taskTTL: options.taskTTL) == .pending else {
                return Self.error(.badRequest, "UnsupportedOperation",
                                  "Failed to cancel the task, please confirm if the task is in PENDING status.")
            }
            s.tasks[id]?.canceledAt = t
            s.queue.removeAll { $0 == id }
            s.count("tasks.canceled")
            return Self.json([:])
        }
    }

    // MARK: list

    /// The list rows' `caller_parent_id` and `caller_uid`: a stable 16-digit number per account.
    func accountID(_ account: String) -> String {
        let index = options.accounts.firstIndex { $0.name == account }.map { $0 + 1 } ?? 0
        return String(1_000_000_000_000_001 + index)
    }
    /// The list rows' `region` (the documented example's value).
    static let region = "cn-beijing"

    /// A list row's `api_key_id`: a stable six-digit number for a key.
    static func apiKeyID(_ key: String) -> String { String(100_000 + fnv1a(key) % 900_000) }

    /// Epoch milliseconds of sandbox time `t`, as the list shows times.
    func epochMilliseconds(_ t: Double) -> Int { Int(wallTime(t) * 1000) }

    /// `GET /api/v1/tasks`, the documented batch query (reference §1.9): a flat page of rows, newest first,
    /// within a window of at most 24 hours (the last 24 hours by default).
    func list(_ request: HTTPRequest, _ entry: inout JournalEntry) -> HTTPResponse {
        let q = request.query
        let listAccount = Self.apiKey(request).flatMap(account(forKey:))
        let callFaults: [FiredFault] = state.withLock { s in
            let fired = s.faults.fire(.list, prompt: nil, model: q["model_name"], account: listAccount, random: &s.random)
            for f in fired { s.count("fault." + f.name.rawValue) }
            return fired
        }
        entry.fault = callFaults.map(\.name.rawValue).joined(separator: ",").nilIfEmpty
        if callFaults.contains(where: { $0.name == .list404 }) { return Self.notFound(request.path) }
        let caller: Caller
        switch authorize(request, &entry) {
        case .refused(let refusal): return refusal.dashScope
        case .caller(let c): caller = c
        }
        func int(_ name: String, _ def: Int, _ range: ClosedRange<Int>) -> Int?? {
            guard let v = q[name] else { return .some(def) }
            guard let i = Int(v), range.contains(i) else { return .none }
            return .some(i)
        }
        guard let pageNo = int("page_no", 1, 1...1_000_000) ?? nil else {
            return Self.invalid("page_no must be an integer >= 1.")
        }
        guard let pageSize = int("page_size", 10, 1...100) ?? nil else {
            return Self.invalid("page_size must be an integer in [1, 100].")
        }
        let offset = options.listTimeZoneOffsetHours * 3600
        var bounds: [String: Double] = [:]
        for name in ["start_time", "end_time"] {
            guard let v = q[name] else { continue }
            guard let t = ProviderTime.parseCompact(v, offset: offset) else {
                return Self.invalid("\(name) must be YYYYMMDDhhmmss, got \"\(v)\".")
            }
            bounds[name] = t
        }
        let statusFilter = q["status"]
        if let st = statusFilter, TaskStatus(rawValue: st) == nil {
            return Self.invalid("status must be one of "
                + TaskStatus.allCases.map(\.rawValue).joined(separator: ", ") + ", got \"\(st)\".")
        }
        let modelFilter = q["model_name"]
        let taskFilter = q["task_id"]
        let realNow = options.rateClock?() ?? realElapsed()
        return state.withLock { s in
            let t = sandboxNow(s)
            // Whole-second bounds, both inclusive; an absent end is now, an absent start 24 hours before the end.
            let upper = bounds["end_time"].map { $0 + 1 } ?? wallTime(t)
            let lower = bounds["start_time"] ?? upper - ProviderTime.listWindowLimit
            if upper - lower > ProviderTime.listWindowLimit + 1 {
                return Self.invalid("start_time and end_time may be at most 24 hours apart "
                    + "(start_time defaults to 24 hours before end_time, end_time to now).")
            }
            // A list is a call of the task query API: it shares the account's 20 QPS with single-task queries
            // (the documented limit names the query API, not one endpoint; the stricter reading is the safe one).
            guard SandboxState.admit(&s.recentQueries[caller.account, default: []], now: realNow, limit: options.queryQPS) else {
                s.count("throttled.query_qps")
                return Self.throttled("Throttling.RateQuota", retryAfter: nil)
            }
            s.settle(at: t, concurrency: options.concurrency)
            s.count("lists")
            if callFaults.contains(where: { $0.name == .list500 }) {
                return Self.error(.internalServerError, "InternalError",
                                  "An internal error has occured, please try again later or contact service support.")
            }
            let matching = s.order.reversed().compactMap { s.tasks[$0] }.filter { task in
                if task.account != caller.account || task.via != .dashscope { return false }
                if task.listFaults.omit { return false }
                if let late = task.listFaults.lateSeconds, t < task.createdAt + late { return false }
                if t >= task.createdAt + options.taskTTL { return false }   // expired (reference §1.5)
                let created = wallTime(task.createdAt)
                if created < lower || created >= upper { return false }
                if let m = modelFilter, task.model.rawValue != m { return false }
                if let id = taskFilter, task.id != id { return false }
                if let st = statusFilter, task.status(at: t, taskTTL: options.taskTTL).rawValue != st { return false }
                return true
            }
            let page = matching.dropFirst((pageNo - 1) * pageSize).prefix(pageSize)
            return Self.json([
                "data": page.map { listRow($0, at: t) }, "total": matching.count, "page_no": pageNo,
                "page_size": pageSize, "total_page": (matching.count + pageSize - 1) / pageSize,
            ])
        }
    }

    /// One documented list row (reference §1.9), plus the opt-in extras, broken when the task's
    /// `list_malformed_row` fault says so.
    func listRow(_ task: SandboxTask, at t: Double) -> [String: Any] {
        let status = task.status(at: t, taskTTL: options.taskTTL)
        var row: [String: Any] = [
            "task_id": task.id, "status": status.rawValue, "model_name": task.model.rawValue,
            "gmt_create": epochMilliseconds(task.createdAt), "region": Self.region, "request_id": task.requestID,
            "api_key_id": task.apiKeyID, "caller_parent_id": accountID(task.account), "caller_uid": accountID(task.account),
            "user_api_unique_key": "apikey:v1:aigc:video-generation:video-synthesis:\(task.model.rawValue)",
        ]
        if let started = task.startedAt(by: t) { row["start_time"] = epochMilliseconds(started) }
        if let ended = task.endedAt(by: t, taskTTL: options.taskTTL) { row["end_time"] = epochMilliseconds(ended) }
        if options.listExtras {
            row["prompt"] = task.prompt
            row["submit_time"] = ProviderTime.format(wallTime(task.createdAt))
            if let started = task.startedAt(by: t) { row["scheduled_time"] = ProviderTime.format(wallTime(started)) }
            if status == .failed, case .fail(let code, let message) = task.outcome {
                row["code"] = code
                row["message"] = message
            }
        }
        if task.listFaults.malformed {
            switch task.number % 3 {
            case 1: row["task_id"] = task.number
            case 2: row["status"] = "PAUSED"
            default: row["status"] = nil
            }
        }
        return row
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
