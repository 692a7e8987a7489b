/// The provider's r2v billing rule (reference §1.6): output seconds plus input-video seconds, where the input
/// videos share a 5 s quota split evenly across *all* references (images included), each video capped at its share.
public enum Billing {
    public static let inputVideoQuotaSeconds = 5.0

    /// Billed input-video seconds for references of which `videoSeconds` are the videos' durations and
    /// `referenceCount` is the number of references in total.
    public static func billedInputSeconds(videoSeconds: [Double], referenceCount: Int) -> Double {
        guard referenceCount > 0 else { return 0 }
        let share = inputVideoQuotaSeconds / Double(referenceCount)
        let capped = videoSeconds.map { min($0, share) }.reduce(0, +)
        // The provider reports 1.65 for a third of 5 s: round down to hundredths like it does.
        return (capped * 100).rounded(.down) / 100
    }

    /// Billed seconds in total: output plus capped input video.
    public static func billedSeconds(outputSeconds: Int, videoSeconds: [Double], referenceCount: Int) -> Double {
        Double(outputSeconds) + billedInputSeconds(videoSeconds: videoSeconds, referenceCount: referenceCount)
    }
}

/// USD per billed second, per model and resolution (`[pricing]` in reel.toml).
public struct PricingTable: Sendable, Equatable, Codable {
    public var rates: [String: Double]   // key "model/resolution", e.g. "wan2.6-r2v/1080p"

    public init(rates: [String: Double] = [:]) { self.rates = rates }

    public static func key(_ model: RenderModel, _ resolution: Resolution) -> String {
        "\(model.rawValue)/\(resolution.rawValue)"
    }

    public func rate(_ model: RenderModel, _ resolution: Resolution) -> Double? {
        rates[Self.key(model, resolution)]
    }

    public mutating func set(_ model: RenderModel, _ resolution: Resolution, _ usdPerSecond: Double) {
        rates[Self.key(model, resolution)] = usdPerSecond
    }

    /// Cost in USD of `billedSeconds` on the given model and tier; nil when the table has no rate for it.
    public func cost(_ model: RenderModel, _ resolution: Resolution, billedSeconds: Double) -> Double? {
        rate(model, resolution).map { $0 * billedSeconds }
    }
}
