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

    func create(_ request: HTTPRequest, _ entry: inout JournalEntry) async -> HTTPResponse {
        if let failure = authFailure(request) { return failure }
        let ossHeader = request.headers.first(name: "x-dashscope-ossresourceresolve")?.lowercased() == "enable"
        entry.ossHeader = ossHeader
        guard request.headers.first(name: "x-dashscope-async")?.lowercased() == "enable" else {
            return Self.error(.forbidden, "AccessDenied", "current user api does not support synchronous calls")
        }
        guard let body = try? JSONSerialization.jsonObject(with: Data(request.body.readableBytesView)),
              let object = body as? [String: Any] else {
            return Self.invalid("The request body is not a valid JSON object.")
        }
        guard let modelName = object["model"] as? String, !modelName.isEmpty else {
            return Self.error(.badRequest, "BadRequest.EmptyModel", "Required parameter \"model\" missing from request.")
        }
        entry.model = modelName
        guard let input = object["input"] as? [String: Any] else {
            return Self.error(.badRequest, "BadRequest.EmptyInput", "Required input parameter missing from request.")
        }
        guard let model = RenderModel(rawValue: modelName) else {
            return Self.error(.notFound, "ModelNotFound", "Model not exist.")
        }
        guard let rawPrompt = input["prompt"] as? String, !rawPrompt.trimmingCharacters(in: .whitespaces).isEmpty else {
            return Self.invalid("Field required: input.prompt")
        }
        let prompt = String(rawPrompt.prefix(ProviderLimits.maxPromptCharacters))

        // References.
        let field = input["reference_urls"] != nil ? "reference_urls" : "reference_video_urls"
        entry.referenceField = input[field] != nil ? field : nil
        guard let refsAny = input[field] else { return Self.invalid("Field required: input.reference_urls") }
        guard let refs = refsAny as? [String] else { return Self.invalid("input.\(field) must be an array of URL strings.") }
        guard !refs.isEmpty else { return Self.invalid("input.\(field) must not be empty.") }
        guard refs.count <= ProviderLimits.maxReferences else {
            return Self.invalid("input.\(field) allows at most \(ProviderLimits.maxReferences) references, got \(refs.count).")
        }
        let videos = refs.filter(Self.isVideo)
        guard videos.count <= ProviderLimits.maxVideoReferences else {
            return Self.invalid("input.\(field) allows at most \(ProviderLimits.maxVideoReferences) videos, got \(videos.count).")
        }
        if field == "reference_video_urls", videos.count != refs.count {
            return Self.invalid("input.reference_video_urls accepts videos (mp4, mov) only.")
        }
        for url in refs {
            let lower = url.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") || lower.hasPrefix("oss://") else {
                return Self.error(.badRequest, "InvalidURL", "Invalid URL provided in your request: \(url)")
            }
            if lower.hasPrefix("oss://"), !ossHeader {
                return Self.invalid("oss:// URLs need the header X-DashScope-OssResourceResolve: enable.")
            }
        }

        // Parameters.
        let params: [String: Any]
        switch object["parameters"] {
        case nil: params = [:]
        case let p as [String: Any]: params = p
        default: return Self.invalid("parameters must be a JSON object.")
        }
        var duration = 5
        if let d = params["duration"] {
            guard let v = Self.integer(d), ProviderLimits.durationRange.contains(v) else {
                return Self.invalid("parameters.duration must be an integer in [2, 10].")
            }
            duration = v
        }
        if let s = params["seed"] {
            guard let v = Self.integer(s), ProviderLimits.seedRange.contains(v) else {
                return Self.invalid("parameters.seed must be an integer in [0, 2147483647].")
            }
        }
        if let s = params["shot_type"] {
            guard let v = s as? String, ShotType(rawValue: v) != nil else {
                return Self.invalid("parameters.shot_type must be \"single\" or \"multi\".")
            }
        }
        if let w = params["watermark"], !(w is Bool) || Self.integer(w) != nil {
            return Self.invalid("parameters.watermark must be a boolean.")
        }
        var audio = true
        if let a = params["audio"] {
            guard let v = a as? Bool, Self.integer(a) == nil else { return Self.invalid("parameters.audio must be a boolean.") }
            if model.supportsSilentOutput { audio = v }   // standard r2v always has audio; the flag is ignored
        }
        let size = params["size"] as? String ?? "1920*1080"
        if params["size"] != nil, !(params["size"] is String) {
            return Self.invalid("parameters.size must be a string such as \"1280*720\".")
        }
        let tier = FrameSize.tier(ofProviderSize: size)
        if tier == nil, options.badSize == .reject {
            return Self.invalid("parameters.size \"\(size)\" is not supported; use one of "
                + FrameSize.allowed.map(\.2.providerString).joined(separator: ", ") + ".")
        }
        if prompt.contains("__BLOCK_INPUT__") {
            return Self.error(.badRequest, "DataInspectionFailed", "Input data may contain inappropriate content.")
        }

        // Billing facts of the references.
        let videoSeconds: [Double] = state.withLock { s in
            videos.map { url in
                if url.lowercased().hasPrefix("oss://") { return s.uploads[String(url.dropFirst(6))]?.videoSeconds ?? 10 }
                return HTTPRequest(method: .GET, uri: url).query["duration"].flatMap(Double.init) ?? 10
            }
        }
        let missingUpload: Bool = state.withLock { s in
            refs.contains { $0.lowercased().hasPrefix("oss://") && s.uploads[String($0.dropFirst(6))] == nil }
        }

        let realNow = options.rateClock?() ?? realElapsed()
        let requestID = Self.requestID()
        let apiKey = Self.apiKey(request) ?? ""
        let frame = FrameSize(providerString: size) ?? FrameSize(width: 1280, height: 720)
        let decision: (HTTPResponse, SandboxTask?, Double?) = state.withLock { s in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            let fired = s.faults.fire(.create, prompt: prompt, model: modelName, random: &s.random)
            func has(_ f: FaultName) -> FiredFault? { fired.first { $0.name == f } }
            let delay = has(.createDelay).map { $0.rule?.seconds ?? 5 }
            entry.fault = fired.map(\.name.rawValue).joined(separator: ",").nilIfEmpty
            for f in fired { s.count("fault." + f.name.rawValue) }
            if has(.inputInspection) != nil {
                return (Self.error(.badRequest, "DataInspectionFailed", "Input data may contain inappropriate content."), nil, delay)
            }
            if has(.createIPInfringement) != nil {
                return (Self.error(.badRequest, "IPInfringementSuspect", "Input data is suspected of being involved in IP infringement."), nil, delay)
            }
            if let f = has(.createThrottle) {
                return (Self.throttled("Throttling.RateQuota", retryAfter: f.rule?.retryAfter), nil, delay)
            }
            if has(.createError) != nil {
                return (Self.error(.internalServerError, "InternalError", "An internal error has occured, please try again later or contact service support."), nil, delay)
            }
            if has(.createReset) != nil { return (.reset, nil, delay) }
            guard SandboxState.admit(&s.recentCreates, now: realNow, limit: options.submitRPS) else {
                s.count("throttled.create_rps")
                return (Self.throttled("Throttling.RateQuota", retryAfter: nil), nil, delay)
            }
            let full = !s.queue.isEmpty || s.active(at: t) >= options.concurrency
            if full, options.overflow == .throttle {
                s.count("throttled.concurrency")
                return (Self.throttled("Throttling", retryAfter: nil), nil, delay)
            }
            let outcomes = s.faults.fire(.outcome, prompt: prompt, model: modelName, random: &s.random)
            func outcome(_ f: FaultName) -> FiredFault? { outcomes.first { $0.name == f } }
            for f in outcomes { s.count("fault." + f.name.rawValue) }
            var result = TaskOutcome.succeed(.normal)
            if tier == nil {
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
                $0.draw(model: model, resolution: tier ?? .p720, durationSeconds: duration,
                        videoSeconds: videoSeconds.reduce(0, +), random: &s.random)
            } ?? r.lowerBound + s.random.unit() * (r.upperBound - r.lowerBound)
            let queueDelay = outcome(.slowQueue).map { $0.rule?.seconds ?? 3600 } ?? options.queueDelay
            let rows = s.faults.fire(.row, prompt: prompt, model: modelName, random: &s.random)
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
            var task = SandboxTask(
                id: UUID().uuidString.lowercased(), requestID: requestID, apiKeyID: Self.apiKeyID(apiKey),
                number: s.createdCount, model: model, prompt: prompt, size: size, frame: frame,
                duration: duration, audio: audio, referenceCount: refs.count,
                billedInputSeconds: Billing.billedInputSeconds(videoSeconds: videoSeconds, referenceCount: refs.count),
                createdAt: t, queueDelay: queueDelay, runTime: runTime, outcome: result, listFaults: listFaults,
                admittedAt: full ? nil : t, canceledAt: nil)
            if outcome(.spontaneousCancel) != nil { task.canceledAt = t + min(queueDelay, 1) / 2 }
            s.tasks[task.id] = task
            s.order.append(task.id)
            if full { s.queue.append(task.id) }
            s.count("tasks.created")
            entry.taskID = task.id
            if has(.createErrorAfterCreate) != nil {
                // The task exists, so this answer carries the create's request id, the one its list row shows
                // (that a 500 carries it is an inference; the documents only say the row has the create's id).
                return (Self.json(["code": "InternalError", "request_id": requestID,
                                   "message": "An internal error has occured, please try again later or contact service support."],
                                  status: .internalServerError), task, delay)
            }
            if has(.createResetAfterCreate) != nil { return (.reset, task, delay) }
            return (Self.json(["output": ["task_status": "PENDING", "task_id": task.id], "request_id": requestID]),
                    task, delay)
        }
        if let task = decision.1, case .succeed = task.outcome {
            media.prepare(ResultMedia.Key(frame: task.resultFrame, seconds: task.resultSeconds, audio: task.audio))
        }
        if let delay = decision.2 { try? await Task.sleep(for: .milliseconds(Int(delay * 1000))) }
        return decision.0
    }

    // MARK: query

    func query(_ request: HTTPRequest, id: String, _ entry: inout JournalEntry) -> HTTPResponse {
        if let failure = authFailure(request) { return failure }
        let realNow = options.rateClock?() ?? realElapsed()
        let base = Self.base(request)
        return state.withLock { s -> HTTPResponse in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            let task = s.tasks[id]
            entry.model = task?.model.rawValue
            let fired = s.faults.fire(.query, prompt: task?.prompt, model: task?.model.rawValue, random: &s.random)
            func has(_ f: FaultName) -> FiredFault? { fired.first { $0.name == f } }
            entry.fault = fired.map(\.name.rawValue).joined(separator: ",").nilIfEmpty
            for f in fired { s.count("fault." + f.name.rawValue) }
            if let f = has(.queryThrottle) { return Self.throttled("Throttling.RateQuota", retryAfter: f.rule?.retryAfter) }
            guard SandboxState.admit(&s.recentQueries, now: realNow, limit: options.queryQPS) else {
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

    func cancel(_ request: HTTPRequest, id: String) -> HTTPResponse {
        if let failure = authFailure(request) { return failure }
        return state.withLock { s in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            guard let task = s.tasks[id], task.status(at: t, taskTTL: options.taskTTL) == .pending else {
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

    /// The one account behind every sandbox key (the list rows' `caller_parent_id` and `caller_uid`).
    static let accountID = "1000000000000001"
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
        let callFaults: [FiredFault] = state.withLock { s in
            let fired = s.faults.fire(.list, prompt: nil, model: q["model_name"], random: &s.random)
            for f in fired { s.count("fault." + f.name.rawValue) }
            return fired
        }
        entry.fault = callFaults.map(\.name.rawValue).joined(separator: ",").nilIfEmpty
        if callFaults.contains(where: { $0.name == .list404 }) { return Self.notFound(request.path) }
        if let failure = authFailure(request) { return failure }
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
            guard SandboxState.admit(&s.recentQueries, now: realNow, limit: options.queryQPS) else {
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
            "api_key_id": task.apiKeyID, "caller_parent_id": Self.accountID, "caller_uid": Self.accountID,
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
