import Foundation
import ReelCore

/// Render time as a function of the job (`reel-sandbox --run-time-model`), so that a client that learns run times
/// per job shape can be measured against one that does not.
///
/// seconds = (40 + 16·output s + 4·reference-video s) × 1.5 for 1080P × 0.4 for `wan2.6-r2v-flash`, times
/// log-normal noise e^(0.1·N(0,1)) (sandbox seconds). The provider documents only "about 1–5 min" per render
/// (reference §1.10); the shape (flash well under standard, 1080P and longer clips slower, reference video adds
/// work) and every constant here are the sandbox's assumption, chosen so that standard renders span roughly
/// 1–6 min and flash ones 0.5–2.5 min. Without the option each task's run time is drawn uniformly from
/// `--run-time`, independent of the job.
public struct RenderTimeModel: Sendable, Equatable {
    public var base = 40.0
    public var perOutputSecond = 16.0
    public var perVideoSecond = 4.0
    public var p1080Factor = 1.5
    public var flashFactor = 0.4
    /// σ of the log-normal noise.
    public var noise = 0.1

    public init() {}

    /// The median render time of a job of this shape, in sandbox seconds.
    public func median(model: RenderModel, resolution: Resolution, durationSeconds: Int, videoSeconds: Double) -> Double {
        (base + perOutputSecond * Double(durationSeconds) + perVideoSecond * videoSeconds)
            * (resolution == .p1080 ? p1080Factor : 1) * (model == .r2vFlash ? flashFactor : 1)
    }

    /// One draw: the median times the noise.
    public func draw(model: RenderModel, resolution: Resolution, durationSeconds: Int, videoSeconds: Double,
                     random: inout SplitMix64) -> Double {
        let u1 = max(random.unit(), 1e-12), u2 = random.unit()
        let normal = (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        return median(model: model, resolution: resolution, durationSeconds: durationSeconds, videoSeconds: videoSeconds)
            * exp(noise * normal)
    }
}
