import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ReelControl
import ReelCore
import ReelHTTPServer
import ReelProtocol
import Testing

/// A backend that refuses everything: routing, method and filter checks answer before any backend call.
struct RefusingBackend: ControlBackend {
    struct Reached: Error {}
    func status() async throws -> StatusResponse { throw Reached() }
    func jobs(state: JobState?, batch: String?, limit: Int, cursor: String?) async throws -> JobPage { throw Reached() }
    func job(_ key: JobKey) async throws -> JobDetail? { throw Reached() }
    func perform(_ action: JobAction, on key: JobKey) async throws -> ActionResult { throw Reached() }
    func batches() async throws -> BatchList { throw Reached() }
    func batch(_ name: String) async throws -> BatchView? { throw Reached() }
    func perform(_ action: BatchAction, onBatch name: String) async throws -> ActionResult { throw Reached() }
    func perform(_ action: GlobalAction) async throws -> ActionResult { throw Reached() }
    func metrics() async throws -> String { throw Reached() }
    func events(batch: String?) async -> any AsyncSequence<[ControlEvent], Never> & Sendable {
        AsyncStream<[ControlEvent]> { $0.finish() }
    }
}

@Suite struct RoutingTests {
    let api = ControlAPI(backend: RefusingBackend(), authorizer: Authorizer(daemonUID: getuid(), adminGID: nil),
                         logger: Logger(label: "test"))

    func send(_ method: HTTPMethod, _ uri: String) async -> (status: Int, code: String?, allow: String?) {
        let response = await api.handle(HTTPRequest(method: method, uri: uri))
        var code: String?
        if case .bytes(let buffer) = response.body,
           let object = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any] {
            code = (object["error"] as? [String: Any])?["code"] as? String
        }
        return (Int(response.status.code), code, response.headers.first(name: "allow"))
    }

    /// Paths are split at their `/` bytes before decoding: a combining mark right after a slash, or an encoded
    /// slash, stays inside its segment, so the address is malformed (400), not another endpoint (405).
    @Test func segmentsSplitOnBytesNotCharacters() async {
        let combining = await send(.POST, "/v1/jobs/autumn-promo/%CC%81hero-001/hold")
        #expect(combining.status == 400)
        #expect(combining.code == "bad_job")
        let raw = await send(.POST, "/v1/jobs/autumn-promo/\u{301}hero-001/hold".addingPercentEncoding(
            withAllowedCharacters: .urlPathAllowed)!)
        #expect(raw.status == 400)
        let encodedSlash = await send(.GET, "/v1/jobs/a%2Fb/c")
        #expect(encodedSlash.status == 400)
        #expect(encodedSlash.code == "bad_job")
    }

    /// Every 405 names the path's methods in `Allow` (RFC 9110 §15.5.6).
    @Test func methodNotAllowedCarriesAllow() async {
        for (method, uri, allow) in [(HTTPMethod.POST, "/v1/status", "GET, HEAD"),
                                     (.DELETE, "/v1/jobs", "GET, HEAD"),
                                     (.PUT, "/v1/jobs/a/b", "GET, HEAD"),
                                     (.GET, "/v1/jobs/a/b/hold", "POST"),
                                     (.GET, "/v1/batches/a/pause", "POST"),
                                     (.GET, "/v1/drain", "POST")] {
            let r = await send(method, uri)
            #expect(r.status == 405, "\(method) \(uri)")
            #expect(r.allow == allow, "\(method) \(uri)")
        }
    }

    /// Filters present but empty do not match the document's patterns and enums: 400, as documented.
    @Test func emptyFiltersAreRejected() async {
        #expect(await send(.GET, "/v1/jobs?batch=").code == "bad_batch")
        #expect(await send(.GET, "/v1/jobs?batch=").status == 400)
        #expect(await send(.GET, "/v1/jobs?state=").code == "bad_state")
    }
}
