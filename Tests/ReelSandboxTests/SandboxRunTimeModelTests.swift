import ReelCore
import ReelSandbox
import Testing

@Suite struct SandboxRunTimeModelTests {
    typealias C = SandboxClient

    @Test func theShapeIsFlashUnderStandardAndLongerAndLargerSlower() {
        let m = RenderTimeModel()
        func median(_ model: RenderModel, _ res: Resolution, _ seconds: Int, video: Double = 0) -> Double {
            m.median(model: model, resolution: res, durationSeconds: seconds, videoSeconds: video)
        }
        #expect(median(.r2vFlash, .p720, 2) == 28.8)
        #expect(median(.r2v, .p1080, 10) == 300)
        #expect(median(.r2vFlash, .p1080, 10) < median(.r2v, .p1080, 10) / 2)
        #expect(median(.r2v, .p1080, 5) > median(.r2v, .p720, 5))
        #expect(median(.r2v, .p720, 10) > median(.r2v, .p720, 5))
        #expect(median(.r2v, .p720, 5, video: 10) > median(.r2v, .p720, 5))
        var random = SplitMix64(seed: 1)
        let draws = (0..<2000).map { _ in
            m.draw(model: .r2v, resolution: .p720, durationSeconds: 5, videoSeconds: 0, random: &random)
        }.sorted()
        #expect(abs(draws[1000] / 120 - 1) < 0.02, "the noise is centred on the median")
        #expect(draws[1900] / draws[1000] > 1.1 && draws[1900] / draws[1000] < 1.25, "σ 0.1: p95 ≈ median × 1.18")
    }

    /// Through the running sandbox on its virtual clock: a short flash render ends long before a long standard one.
    @Test func tasksRenderForTheirModelledTime() async throws {
        var model = RenderTimeModel()
        model.noise = 0
        try await withSandbox({ $0.runTimeModel = model; $0.queueDelay = 2 }) { c in
            let flash = try await c.create(C.body(model: "wan2.6-r2v-flash", size: "1280*720", duration: 2))
            let standard = try await c.create(C.body(model: "wan2.6-r2v", size: "1920*1080", duration: 10))
            try await c.advance(2 + 29)
            #expect(try await c.query(flash).status == "SUCCEEDED")
            #expect(try await c.query(standard).status == "RUNNING")
            try await c.advance(250)
            #expect(try await c.query(standard).status == "RUNNING", "300 s at 1080P for 10 s")
            try await c.advance(25)
            #expect(try await c.query(standard).status == "SUCCEEDED")
        }
    }
}
