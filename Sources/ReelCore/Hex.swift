/// Lowercase hexadecimal text of bytes (digests, content hashes).
public enum Hex {
    /// `bytes` as lowercase hex, two digits per byte. Made without `String(format:)`, which costs about a
    /// microsecond per byte on Linux and showed up as a third of intake's CPU time in a profile.
    public static func string<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var utf8: [UInt8] = []
        utf8.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            utf8.append(digits[Int(b >> 4)])
            utf8.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: utf8, as: UTF8.self)
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)
}
