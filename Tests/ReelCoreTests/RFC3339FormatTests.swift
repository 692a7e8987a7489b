import Foundation
import ReelCore
import Testing

/// `RFC3339.format` (the wire's time format) against Foundation's ISO 8601 formatter, and round trips through
/// `RFC3339.parse`.
@Suite struct RFC3339FormatTests {
    @Test(arguments: [0.0, 0.999, 951_782_400.5, 4_107_542_399.999, -1.5, -86_400.0, 1_795_000_000.123,
                      253_402_300_799.0])
    func formatsLikeFoundation(_ t: Double) {
        let foundation = ISO8601DateFormatter()
        foundation.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        #expect(RFC3339.format(t) == foundation.string(from: Date(timeIntervalSince1970: t)))
    }

    @Test func roundTripsAcrossFourCenturiesToTheMillisecond() {
        var t = -2_208_988_800.0   // 1900-01-01
        while t < 10_413_792_000 { // 2300-01-01
            let text = RFC3339.format(t)
            #expect(text.count == 24 && text.hasSuffix("Z"), "\(text)")
            #expect(RFC3339.parse(text).map { $0 <= t && t - $0 < 0.001 } == true, "\(t) → \(text)")
            t += 86_400 * 37.37 + 0.001
        }
        #expect(RFC3339.format(951_782_400) == "2000-02-29T00:00:00.000Z", "a leap day")
        #expect(RFC3339.format(1_795_000_000.1239) == "2026-11-18T11:06:40.123Z", "milliseconds rounded down")
    }
}
