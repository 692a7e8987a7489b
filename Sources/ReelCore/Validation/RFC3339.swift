/// RFC 3339 `date-time` (section 5.6): `2026-12-01T18:00:00Z`, `2026-12-01T20:00:00.5+02:00`.
/// `T` and `Z` may be lower case; a space instead of `T` is not accepted. A leap second (`:60`) is read as `:59`.
public enum RFC3339 {
    /// Seconds since 1970 (UTC), or nil when `text` is not an RFC 3339 date-time or names a day that does not exist.
    public static func parse(_ text: String) -> Timestamp? {
        let c = Array(text.utf8)
        func num(_ from: Int, _ count: Int) -> Int? { digits(c, from, count) }
        func at(_ k: Int, _ ch: Character) -> Bool { k < c.count && c[k] == ch.asciiValue! }
        guard let year = num(0, 4), at(4, "-"), let month = num(5, 2), at(7, "-"), let day = num(8, 2),
              at(10, "T") || at(10, "t"),
              let hour = num(11, 2), at(13, ":"), let minute = num(14, 2), at(16, ":"), let second = num(17, 2)
        else { return nil }
        var k = 19
        var fraction = 0.0
        if at(k, ".") {
            k += 1
            var scale = 0.1
            let start = k
            while k < c.count, c[k] >= 0x30, c[k] <= 0x39 {
                fraction += Double(c[k] - 0x30) * scale
                scale /= 10
                k += 1
            }
            guard k > start else { return nil }
        }
        var offset = 0
        if at(k, "Z") || at(k, "z") {
            k += 1
        } else if at(k, "+") || at(k, "-") {
            guard let oh = num(k + 1, 2), at(k + 3, ":"), let om = num(k + 4, 2), oh <= 23, om <= 59 else { return nil }
            offset = (oh * 60 + om) * 60 * (at(k, "-") ? -1 : 1)
            k += 6
        } else {
            return nil
        }
        guard k == c.count, (1...12).contains(month), day >= 1, day <= daysIn(month, year),
              hour <= 23, minute <= 59, second <= 60
        else { return nil }
        let days = daysFromCivil(year, month, day)
        let secs = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offset
        return Double(secs) + fraction
    }

    /// The decimal number in `c[from..<from+count]`, or nil when it is out of range or not all ASCII digits.
    static func digits(_ c: [UInt8], _ from: Int, _ count: Int) -> Int? {
        guard from >= 0, from + count <= c.count else { return nil }
        var v = 0
        for k in from..<(from + count) {
            guard c[k] >= 0x30, c[k] <= 0x39 else { return nil }
            v = v * 10 + Int(c[k] - 0x30)
        }
        return v
    }

    static func daysIn(_ month: Int, _ year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds rounded down), the form of every time on the wire.
    /// Hand-rolled because Foundation's ISO 8601 formatter builds an ICU formatter per call: it was 69% of the
    /// CPU of `GET /v1/jobs` (seven times per row).
    public static func format(_ t: Timestamp) -> String {
        let millis = Int((t * 1000).rounded(.down))
        let (days, msOfDay) = millis.quotientAndRemainder(dividingBy: 86_400_000)
        let (day, ms) = msOfDay < 0 ? (days - 1, msOfDay + 86_400_000) : (days, msOfDay)
        let (y, m, d) = civilFromDays(day)
        // One allocation: the 24 bytes are written in place (this runs several times per listed job).
        return String(unsafeUninitializedCapacity: 24) { out in
            func put(_ v: Int, _ width: Int, at offset: Int) {
                var v = v
                for k in stride(from: offset + width - 1, through: offset, by: -1) {
                    out[k] = 0x30 + UInt8(v % 10)
                    v /= 10
                }
            }
            put(y, 4, at: 0); out[4] = 0x2D; put(m, 2, at: 5); out[7] = 0x2D; put(d, 2, at: 8); out[10] = 0x54
            put(ms / 3_600_000, 2, at: 11); out[13] = 0x3A; put(ms / 60_000 % 60, 2, at: 14); out[16] = 0x3A
            put(ms / 1000 % 60, 2, at: 17); out[19] = 0x2E; put(ms % 1000, 3, at: 20); out[23] = 0x5A
            return 24
        }
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
    static func civilFromDays(_ z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
