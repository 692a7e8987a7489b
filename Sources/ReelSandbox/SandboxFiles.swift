import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ReelCore
import ReelHTTPServer
import Synchronization
import ReelMedia

extension Sandbox {
    // MARK: result host

    /// `GET`/`HEAD` of a signed result URL: Range, Content-Length, expiry (403 OSS XML), download faults.
    func download(_ request: HTTPRequest, id: String, _ entry: inout JournalEntry) async -> HTTPResponse {
        enum Verdict { case refuse(HTTPResponse), serve(SandboxTask, [FiredFault]) }
        let expires = request.query["Expires"].flatMap(Int.init)
        let verdict: Verdict = state.withLock { s in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            s.count("downloads")
            let task = s.tasks[id]
            entry.model = task?.model.rawValue
            entry.account = task?.account
            guard let expires, request.query["Signature"] == signature(id, expires) else {
                return .refuse(Self.ossError(.forbidden, "SignatureDoesNotMatch",
                                             "The request signature we calculated does not match the signature you provided."))
            }
            let fired = s.faults.fire(.download, prompt: task?.prompt, model: task?.model.rawValue, account: task?.account,
                                      random: &s.random)
            entry.fault = fired.map(\.name.rawValue).joined(separator: ",").nilIfEmpty
            for f in fired { s.count("fault." + f.name.rawValue) }
            if fired.contains(where: { $0.name == .expiredURL })
                || task.map({ t > ($0.endsAt ?? .infinity) + options.urlTTL }) == true {
                return .refuse(Self.ossError(.forbidden, "AccessDenied", "Request has expired."))
            }
            guard let task, task.status(at: t, taskTTL: options.taskTTL) == .succeeded,
                  !fired.contains(where: { $0.name == .deletedURL }) else {
                return .refuse(Self.ossError(.notFound, "NoSuchKey", "The specified key does not exist."))
            }
            return .serve(task, fired)
        }
        guard case .serve(let task, let fired) = verdict else {
            if case .refuse(let r) = verdict { return r }
            return .reset
        }
        let bytes: ByteBuffer
        do {
            bytes = try await media.bytes(ResultMedia.Key(frame: task.resultFrame, seconds: task.resultSeconds,
                                                          audio: task.audio))
        } catch {
            logger.error("cannot make result media", metadata: ["error": "\(error)"])
            return Self.ossError(.internalServerError, "InternalError", "\(error)")
        }
        let total = bytes.readableBytes
        var headers: HTTPHeaders = [
            "Content-Type": fired.contains { $0.name == .wrongContentType } ? "application/octet-stream" : "video/mp4",
            "Accept-Ranges": "bytes",
            "ETag": "\"\(signature(id, total))\"",
            "x-oss-request-id": Self.requestID().uppercased(),
        ]
        var range = 0..<total
        var status = HTTPResponseStatus.ok
        if let header = request.headers.first(name: "range") {
            guard let r = Self.byteRange(header, total: total) else {
                headers.add(name: "Content-Range", value: "bytes */\(total)")
                var resp = Self.ossError(.rangeNotSatisfiable, "InvalidRange", "The requested range is not satisfiable")
                resp.headers.add(contentsOf: headers.filter { $0.name == "Content-Range" })
                return resp
            }
            range = r
            status = .partialContent
            headers.add(name: "Content-Range", value: "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(total)")
        }
        headers.add(name: "Content-Length", value: "\(range.count)")
        let slice = bytes.getSlice(at: bytes.readerIndex + range.lowerBound, length: range.count) ?? ByteBuffer()
        if let slow = fired.first(where: { $0.name == .slowDownload }) {
            let rate = max(1, slow.rule?.bytesPerSecond ?? 50_000)
            let truncate = fired.contains { $0.name == .truncatedDownload }
            return HTTPResponse(status: status, headers: headers, body: .stream { writer in
                try await Self.trickle(slice, bytesPerSecond: rate, stopAfter: truncate ? slice.readableBytes / 2 : nil,
                                       to: writer)
            })
        }
        if fired.contains(where: { $0.name == .truncatedDownload }) {
            return HTTPResponse(status: status, headers: headers, body: .stream { writer in
                if let half = slice.getSlice(at: slice.readerIndex, length: slice.readableBytes / 2) {
                    try await writer.write(half)
                }
                throw HTTPAbort()
            })
        }
        return HTTPResponse(status: status, headers: headers, body: .bytes(slice))
    }

    /// Writes `buffer` at about `bytesPerSecond` (10 slices a second); aborts after `stopAfter` bytes if set.
    static func trickle(_ buffer: ByteBuffer, bytesPerSecond: Int, stopAfter: Int?,
                        to writer: HTTPBodyWriter) async throws {
        var rest = buffer
        var sent = 0
        let step = max(1, bytesPerSecond / 10)
        while rest.readableBytes > 0 {
            var n = min(step, rest.readableBytes)
            if let stop = stopAfter { n = min(n, stop - sent) }
            if n <= 0 { throw HTTPAbort() }
            try await writer.write(rest.readSlice(length: n)!)
            sent += n
            if rest.readableBytes > 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        if let stop = stopAfter, sent >= stop { throw HTTPAbort() }
    }

    /// Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n` range; nil when unsatisfiable or malformed.
    static func byteRange(_ header: String, total: Int) -> Range<Int>? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2 else { return nil }
        let a = Int(spec[0].trimmingCharacters(in: .whitespaces))
        let b = Int(spec[1].trimmingCharacters(in: .whitespaces))
        switch (a, b) {
        case (let a?, let b?) where a <= b && a < total: return a..<min(b + 1, total)
        case (let a?, nil) where spec[1].isEmpty && a < total: return a..<total
        case (nil, let n?) where spec[0].isEmpty && n > 0: return max(0, total - n)..<total
        default: return nil
        }
    }

    // MARK: uploads (reference Appendix A)

    func getPolicy(_ request: HTTPRequest, _ entry: inout JournalEntry) -> HTTPResponse {
        if case .refused(let refusal) = authorize(request, &entry) { return refusal.dashScope }
        guard request.query["action"] == "getPolicy" else {
            return Self.invalid("action must be getPolicy.")
        }
        guard let model = request.query["model"], !model.isEmpty else {
            return Self.invalid("Field required: model")
        }
        let dir = "dashscope-instant/\(UUID().uuidString.lowercased().prefix(8))/\(ProviderTime.format(wallTime(0)).prefix(10))/\(UUID().uuidString.lowercased())"
        state.withLock {
            $0.uploadDirs.insert(dir)
            $0.count("upload_policies")
        }
        return Self.json(["output": [
            "policy": Data("{\"expiration\":\"sandbox\",\"conditions\":[[\"starts-with\",\"$key\",\"\(dir)\"]]}".utf8)
                .base64EncodedString(),
            "signature": "sandbox-signature",
            "upload_dir": dir,
            "upload_host": Self.base(request) + Self.uploadPath,
            "expire_in_seconds": 300,
            "max_file_size_mb": 100,
            "capacity_limit_mb": 999_999_999,
            "oss_access_key_id": "LTAI5tSandbox",
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        ]])
    }

    /// The OSS form upload the SDK sends: multipart fields plus `file`; stores it and answers 200.
    func upload(_ request: HTTPRequest) async -> HTTPResponse {
        guard let contentType = request.headers.first(name: "content-type"),
              let form = Multipart.parse(request.bodyBytes, contentType: contentType) else {
            return Self.ossError(.badRequest, "InvalidArgument", "The body of your POST request is not well-formed multipart/form-data.")
        }
        guard let key = form.fields["key"], !key.isEmpty, !key.contains(".."), let file = form.file else {
            return Self.ossError(.badRequest, "InvalidArgument", "The form needs the fields key and file.")
        }
        guard form.fields["OSSAccessKeyId"] == "LTAI5tSandbox", form.fields["Signature"] == "sandbox-signature",
              form.fields["policy"] != nil else {
            return Self.ossError(.forbidden, "AccessDenied", "Invalid according to Policy: OSSAccessKeyId, Signature and policy must come from getPolicy.")
        }
        let known = state.withLock { s in s.uploadDirs.contains { key.hasPrefix($0 + "/") } }
        guard known else {
            return Self.ossError(.forbidden, "AccessDenied", "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", ...]")
        }
        let path = dataDirectory + "/uploads/" + key.replacingOccurrences(of: "/", with: "_")
        guard FileManager.default.createFile(atPath: path, contents: Data(file)) else {
            return Self.ossError(.internalServerError, "InternalError", "cannot store \(key)")
        }
        var seconds: Double?
        if Self.isVideo(key) { seconds = (try? await FFprobe.probe(path))?.durationSeconds }
        let stored = Upload(path: path, contentType: form.fields["x-oss-content-type"] ?? "application/octet-stream",
                            videoSeconds: seconds)
        state.withLock {
            $0.uploads[key] = stored
            $0.count("uploads")
        }
        let status = Int(form.fields["success_action_status"] ?? "204") ?? 204
        return HTTPResponse(status: HTTPResponseStatus(statusCode: [200, 201, 204].contains(status) ? status : 204))
    }
}

/// A minimal multipart/form-data parser (fields as text, one file part named `file`).
enum Multipart {
    struct Form {
        var fields: [String: String] = [:]
        var file: [UInt8]?
    }

    static func parse(_ body: [UInt8], contentType: String) -> Form? {
        guard contentType.lowercased().hasPrefix("multipart/form-data"),
              let b = contentType.components(separatedBy: "boundary=").last?
                .trimmingCharacters(in: CharacterSet(charactersIn: "\" ")), !b.isEmpty else { return nil }
        let delimiter = Array("--\(b)".utf8)
        var form = Form()
        var parts: [ArraySlice<UInt8>] = []
        var i = 0
        var start: Int?
        while let at = find(delimiter, in: body, from: i) {
            if let s = start { parts.append(body[s..<max(s, at - 2)]) }   // drop the CRLF before the delimiter
            i = at + delimiter.count
            if body.count >= i + 2, body[i] == 45, body[i + 1] == 45 { break }   // closing "--"
            start = i + 2   // skip CRLF after the delimiter
        }
        for part in parts {
            guard let split = find([13, 10, 13, 10], in: Array(part), from: 0) else { continue }
            let p = Array(part)
            let head = String(decoding: p[..<split], as: UTF8.self)
            let content = Array(p[(split + 4)...])
            guard let disposition = head.components(separatedBy: "\r\n")
                .first(where: { $0.lowercased().hasPrefix("content-disposition") }),
                let name = value(of: "name", in: disposition) else { continue }
            if name == "file" {
                form.file = content
            } else {
                form.fields[name] = String(decoding: content, as: UTF8.self)
            }
        }
        return form
    }

    private static func value(of attribute: String, in header: String) -> String? {
        for piece in header.split(separator: ";") {
            let kv = piece.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0] == attribute { return kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count, from <= hay.count - needle.count else { return nil }
        var i = from
        while i <= hay.count - needle.count {
            if hay[i] == needle[0], Array(hay[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}
