/// The provider's two time formats (reference §1.5, §1.9), in one place for the client, the sandbox and the daemon.
///
/// - task times in query answers: `YYYY-MM-DD HH:mm:ss.SSS`, with no zone given;
/// - the task list's `start_time`/`end_time` filter: `YYYYMMDDhhmmss`, with no zone given.
///
/// The documents state no zone for either. Reel writes and reads them as UTC+8 (the provider's home region) and
/// never relies on that guess where it matters: differences of two task times do not depend on it, and the list
/// window is widened to cover both readings (`listWindow`) and filtered on `gmt_create` (epoch milliseconds, no zone).
public enum ProviderTime {
    /// The assumed zone of zone-less provider times: UTC+8.
    public static let assumedOffset: Double = 8 * 3600

    /// `YYYY-MM-DD HH:mm:ss.SSS` (UTC+8) for seconds since 1970 UTC.
    public static func format(_ unix: Timestamp) -> String {
        let (y, mo, d, h, mi, s, ms) = fields(unix)
        return "\(pad(y, 4))-\(pad(mo, 2))-\(pad(d, 2)) \(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(ms, 3))"
    }

    /// `YYYYMMDDhhmmss` (UTC+8) for seconds since 1970 UTC, seconds rounded down.
    public static func formatCompact(_ unix: Timestamp) -> String {
        let (y, mo, d, h, mi, s, _) = fields(unix)
        return pad(y, 4) + pad(mo, 2) + pad(d, 2) + pad(h, 2) + pad(mi, 2) + pad(s, 2)
    }

    /// Seconds since 1970 UTC of `YYYY-MM-DD HH:mm:ss[.SSS]` read as UTC+8 (`T` also accepted between date and time).
    public static func parse(_ text: String) -> Timestamp? {
        let c = Array(text.utf8)
        guard c.count >= 19, c[4] == 0x2D, c[7] == 0x2D, c[10] == 0x20 || c[10] == 0x54, c[13] == 0x3A,
              c[16] == 0x3A,
              let y = number(c, 0, 4), let mo = number(c, 5, 2), let d = number(c, 8, 2), let h = number(c, 11, 2),
              let mi = number(c, 14, 2), let s = number(c, 17, 2)
        else { return nil }
        var fraction = 0.0
        if c.count > 19 {
            guard c[19] == 0x2E, c.count > 20 else { return nil }
            var scale = 0.1
            for k in 20..<c.count {
                guard c[k] >= 0x30, c[k] <= 0x39 else { return nil }
                fraction += Double(c[k] - 0x30) * scale
                scale /= 10
            }
        }
        return civil(y, mo, d, h, mi, s).map { $0 + fraction }
    }

    /// Seconds since 1970 UTC of `YYYYMMDDhhmmss` read in the zone `offset` seconds east of UTC (default UTC+8).
    public static func parseCompact(_ text: String, offset: Double = assumedOffset) -> Timestamp? {
        let c = Array(text.utf8)
        guard c.count == 14, let y = number(c, 0, 4), let mo = number(c, 4, 2), let d = number(c, 6, 2),
              let h = number(c, 8, 2), let mi = number(c, 10, 2), let s = number(c, 12, 2) else { return nil }
        return civil(y, mo, d, h, mi, s).map { $0 + assumedOffset - offset }
    }

    /// Seconds between two task times of one answer (`end_time − submit_time`): the zone cancels out.
    public static func seconds(from start: String?, to end: String?) -> Double? {
        guard let start, let end, let a = parse(start), let b = parse(end), b >= a else { return nil }
        return b - a
    }

    /// The longest window the task list accepts (reference §1.9: at most 24 hours).
    public static let listWindowLimit: Double = 24 * 3600

    /// The `start_time`/`end_time` to send so that the list covers `[from, to]` (seconds UTC) whether the provider
    /// reads the zone-less filter as UTC+8 or as UTC: the UTC+8 text of `from − 8 h` and of `to`. The result stays
    /// inside the 24-hour limit by moving its start later, so only the last 16 hours before `to` are certain to
    /// be covered; callers match rows on their own (`gmt_create`, `task_id`) and query anything older directly.
    public static func listWindow(from: Timestamp, to: Timestamp) -> (start: Timestamp, end: Timestamp) {
        let start = max(from - assumedOffset, to - listWindowLimit + 1)
        return (min(start, to), to)
    }

    // MARK: Helpers

    private static func fields(_ unix: Timestamp) -> (Int, Int, Int, Int, Int, Int, Int) {
        let millis = Int(((unix + assumedOffset) * 1000).rounded(.down))
        let (days, msOfDay) = millis.quotientAndRemainder(dividingBy: 86_400_000)
        let (day, ms) = msOfDay < 0 ? (days - 1, msOfDay + 86_400_000) : (days, msOfDay)
        let (y, m, d) = RFC3339.civilFromDays(day)
        return (y, m, d, ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
    }

    private static func civil(_ y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int, _ s: Int) -> Timestamp? {
        guard (1...12).contains(mo), d >= 1, d <= RFC3339.daysIn(mo, y), h <= 23, mi <= 59, s <= 60 else { return nil }
        let secs = RFC3339.daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + min(s, 59)
        return Double(secs) - assumedOffset
    }

    private static func number(_ c: [UInt8], _ from: Int, _ count: Int) -> Int? { RFC3339.digits(c, from, count) }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let digits = String(v)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
