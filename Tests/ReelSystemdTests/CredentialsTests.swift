import Foundation
import ReelSystemd
import Testing

extension SystemdTests {
    @Suite struct CredentialsTests {
        let credKey = "sk-credential0123456789abcdef"
        let fileKey = "sk-file0123456789abcdef012345"
        let envKey = "sk-environment0123456789abcde"

        func write(_ text: String, to path: String, mode: Int) throws {
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        }

        @Test func precedenceIsCredentialThenFileThenEnvironment() throws {
            let tmp = try TempDir()
            defer { tmp.remove() }
            let creds = tmp.path + "/creds"
            try FileManager.default.createDirectory(atPath: creds, withIntermediateDirectories: true)
            try write(credKey + "\n", to: creds + "/dashscope-api-key", mode: 0o400)
            let file = tmp.path + "/api-key"
            try write(fileKey + "\n", to: file, mode: 0o640)
            let env = ["CREDENTIALS_DIRECTORY": creds, "DASHSCOPE_API_KEY": envKey]

            let first = try Credentials.apiKey(apiKeyFile: file, environment: env)
            #expect(first.key == credKey)
            #expect(first.source == .credential(path: creds + "/dashscope-api-key"))

            try FileManager.default.removeItem(atPath: creds + "/dashscope-api-key")
            let second = try Credentials.apiKey(apiKeyFile: file, environment: env)
            #expect(second.key == fileKey)
            #expect(second.source == .file(path: file))

            let third = try Credentials.apiKey(apiKeyFile: nil, environment: env)
            #expect(third.key == envKey)
            #expect(third.source == .environment(name: "DASHSCOPE_API_KEY"))
            #expect(!"\(first.source) \(second.source) \(third.source)".contains("sk-"))
        }

        @Test func noKeyAnywhereSaysHowToProvideOne() {
            #expect {
                try Credentials.apiKey(apiKeyFile: nil, environment: [:])
            } throws: { error in
                let text = "\(error)"
                return text.contains("LoadCredential=dashscope-api-key:") && text.contains("api_key_file")
                    && text.contains("$DASHSCOPE_API_KEY")
            }
        }

        @Test func worldReadableKeyFileIsRefusedWithoutShowingTheKey() throws {
            let tmp = try TempDir()
            defer { tmp.remove() }
            let file = tmp.path + "/api-key"
            try write(fileKey + "\n", to: file, mode: 0o644)
            let error = #expect(throws: CredentialError.self) {
                try Credentials.apiKey(apiKeyFile: file, environment: ["DASHSCOPE_API_KEY": envKey])
            }
            let text = try #require(error).description
            #expect(text.contains(file) && text.contains("readable by every user") && text.contains("chmod"))
            #expect(!text.contains(fileKey) && !text.contains("sk-"))
        }

        @Test func unusableSourcesAreErrorsThatNeverContainTheKey() throws {
            let tmp = try TempDir()
            defer { tmp.remove() }
            let file = tmp.path + "/api-key"
            try write("  \n", to: file, mode: 0o600)
            let missing = tmp.path + "/nope"
            let multiline = tmp.path + "/multi"
            try write(fileKey + "\nsecond line " + fileKey + "\n", to: multiline, mode: 0o600)
            let cases: [(String?, [String: String], String)] = [
                (file, [:], "is empty"),
                (missing, ["DASHSCOPE_API_KEY": envKey], "does not exist"),
                (multiline, [:], "one line"),
                (nil, ["DASHSCOPE_API_KEY": "a\u{7}" + envKey], "control characters"),
            ]
            for (path, env, expected) in cases {
                let error = #expect(throws: CredentialError.self) {
                    try Credentials.apiKey(apiKeyFile: path, environment: env)
                }
                let text = try #require(error).description
                #expect(text.contains(expected), "\(text)")
                #expect(!text.contains(fileKey) && !text.contains(envKey))
            }
        }

        @Test func missingCredentialFallsThroughToTheFile() throws {
            let tmp = try TempDir()
            defer { tmp.remove() }
            let file = tmp.path + "/api-key"
            try write(fileKey, to: file, mode: 0o600)
            let env = ["CREDENTIALS_DIRECTORY": tmp.path + "/empty"]
            let result = try Credentials.apiKey(apiKeyFile: file, environment: env)
            #expect(result.key == fileKey && result.source == .file(path: file))
        }
    }
}
