import Foundation
import ReelControl
import ReelHTTPServer
import Testing

@Suite struct OpenAPITests {
    /// The served document is docs/openapi.json, compiled in from its one source.
    @Test func servedDocumentIsTheCommittedOne() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../docs/openapi.json").standardized.path
        let committed = try String(contentsOfFile: path, encoding: .utf8)
        #expect(committed == OpenAPIDocument.json, "docs/openapi.json must be what reeld serves")
        let parsed = try JSONSerialization.jsonObject(with: Data(committed.utf8)) as? [String: Any]
        let paths = parsed?["paths"] as? [String: Any] ?? [:]
        for endpoint in ["/v1/status", "/v1/jobs", "/v1/jobs/{batch}/{id}", "/v1/jobs/{batch}/{id}/cancel",
                         "/v1/batches", "/v1/batches/{batch}", "/v1/batches/{batch}/pause", "/v1/pause",
                         "/v1/drain", "/v1/reload", "/v1/metrics", "/v1/events"] {
            #expect(paths[endpoint] != nil, "OpenAPI lacks \(endpoint)")
        }
    }
}

extension OpenAPITests {
    /// `resolve` with `adopt` needs a `task_id` (the API answers 400 without one); the schema must say so, or a
    /// schema-driven client or fuzzer takes `{"action": "adopt"}` for a valid body.
    @Test func resolveAdoptRequiresTaskID() throws {
        let doc = try JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any]
        let schemas = (doc?["components"] as? [String: Any])?["schemas"] as? [String: Any]
        let resolve = try #require(schemas?["ResolveRequest"] as? [String: Any])
        let branches = resolve["oneOf"] as? [[String: Any]] ?? []
        let actions = branches.map { (($0["properties"] as? [String: Any])?["action"] as? [String: Any])?["enum"] as? [String] ?? [] }
        #expect(Set(actions.flatMap { $0 }) == ["adopt", "resubmit", "fail"])
        #expect(actions.flatMap { $0 }.count == 3, "each action in exactly one branch")
        let adopt = try #require(branches.first { (($0["properties"] as? [String: Any])?["action"] as? [String: Any])?["enum"] as? [String] == ["adopt"] })
        #expect((adopt["required"] as? [String])?.contains("task_id") == true)
    }
}

@Suite struct AuthorizerTests {
    @Test func rootAndDaemonUserMayMutateOthersMayNot() {
        let auth = Authorizer(daemonUID: 990, adminGID: 4242)
        #expect(auth.refusalToMutate(PeerCredentials(pid: 1, uid: 0, gid: 0)) == nil)
        #expect(auth.refusalToMutate(PeerCredentials(pid: 1, uid: 990, gid: 990)) == nil)
        #expect(auth.refusalToMutate(PeerCredentials(pid: 1, uid: 1234, gid: 4242)) == nil, "primary group is admin")
        let refusal = auth.refusalToMutate(PeerCredentials(pid: 1, uid: 1234, gid: 100))
        #expect(refusal?.contains("uid 1234 may read but not change jobs") == true)
        #expect(auth.refusalToMutate(nil) != nil, "no peer credentials (TCP) never mutates")
    }
}
