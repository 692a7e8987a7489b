@testable import ReelSystemd
import Testing

extension SystemdTests {
    /// What the log redactor must mask, and the ordinary names it must leave alone.
    @Suite struct RedactionTests {
        let r: LogRedactor = {
            let r = LogRedactor()
            r.add(secret: "configured-api-key-value-42")
            return r
        }()

        @Test func secretsAreMasked() {
            let cases: [(String, String)] = [
                ("key configured-api-key-value-42 loaded", "key <redacted> loaded"),
                ("key=sk-0123456789abcdef0123456789abcdef", "key=sk-<redacted>"),
                ("sk-proj-Ab3dEf9hIjKlMnOpQrStUv12 used", "sk-<redacted> used"),
                ("\"sk-4f1c2a9be07d4c55a0b1e2d3c4f5a6b7\"", "\"sk-<redacted>\""),
                ("Authorization: Bearer sk-abcdefghijklmnopqrstuvwxyz123456", "Authorization: Bearer sk-<redacted>"),
                ("authorization: bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "authorization: bearer <redacted>"),
                ("Authorization: OSS LTAI5tAbCdEf:Zm9vYmFyYmF6cXV4", "Authorization: OSS <redacted>"),
                ("GET https://b.oss-cn-beijing.aliyuncs.com/x/y.mp4?Expires=1767225600&OSSAccessKeyId=LTAI5tQ9&Signature=abc%2Bdef%3D done",
                 "GET https://b.oss-cn-beijing.aliyuncs.com/x/y.mp4?Expires=1767225600&OSSAccessKeyId=<redacted>&Signature=<redacted> done"),
                ("url=https://h/p?x-oss-signature=deadbeef0123&x-oss-date=20260101T000000Z",
                 "url=https://h/p?x-oss-signature=<redacted>&x-oss-date=20260101T000000Z"),
                ("https://s3/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=f00d#frag",
                 "https://s3/k?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>#frag"),
                ("oss://b/k?security-token=CAIS1234abcd", "oss://b/k?security-token=<redacted>"),
            ]
            for (input, expected) in cases {
                #expect(r.scrub(input) == expected, "\(input)")
                #expect(!r.scrub(input).contains("0123456789abcdef0123456789"))
            }
        }

        @Test func ordinaryNamesPassUnchanged() {
            let kept = [
                "batch=r2-malformed-no-task-id-x2",
                "/var/spool/reel/rejected/r2-malformed-no-task-id-x2.error.json",
                "r2-malformed-no-task-id-x2/job-0001-with-a-long-name",
                "task_id=0385dc79-5ff8-4d82-bcb6-459b9c7a1b2e",
                "task 0385dc79-5ff8-4d82-bcb6-459b9c7a1b2e SUCCEEDED",
                "disk-usage-0123456789abcdefabcdef is high",
                "sk-holiday-promo-2026-batch",
                "risk-free sk-short task-id",
                "https://dashscope.aliyuncs.com/api/v1/tasks/0385dc79-5ff8-4d82-bcb6-459b9c7a1b2e?page=2&size=10",
                "https://example.com/v.mp4?Expires=1767225600",
                "/srv/reel/output/promo-2026/hero-001.mp4",
                "Bearer short",
                "Authorization: none",
            ]
            for text in kept {
                #expect(r.scrub(text) == text, "\(text)")
            }
        }
    }
}
