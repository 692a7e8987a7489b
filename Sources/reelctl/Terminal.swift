import Foundation

/// How output looks: tables and colour on a terminal, plain JSON otherwise.
struct Terminal {
    let isTTY = isatty(STDOUT_FILENO) == 1
    /// `REELCTL_FORMAT=table`: the human views (tables, progress) even when stdout is not a terminal, e.g. in a
    /// script's log; `--json` still wins.
    let tablesWanted = isatty(STDOUT_FILENO) == 1 || ProcessInfo.processInfo.environment["REELCTL_FORMAT"] == "table"
    var colour: Bool { isTTY && ProcessInfo.processInfo.environment["NO_COLOR"] == nil }

    var width: Int {
        var size = winsize()
        if isTTY, ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return Int(ProcessInfo.processInfo.environment["COLUMNS"] ?? "") ?? 120
    }

    func paint(_ text: String, _ code: String) -> String { colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }

    /// Colour for a job state: green done, red lost, yellow attention, plain otherwise.
    func state(_ s: String) -> String {
        switch s {
        case "succeeded": paint(s, "32")
        case "failed", "expired": paint(s, "31")
        case "in_doubt", "held", "retrying": paint(s, "33")
        case "running", "pending", "downloading", "verifying", "submitting": paint(s, "36")
        default: s
        }
    }

    /// A table whose columns fit the terminal: the last column is cut with an ellipsis when too wide.
    func table(_ header: [String], _ rows: [[String]], colourColumn: Int? = nil) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        let fixed = widths.dropLast().reduce(0, +) + 2 * (widths.count - 1)
        if let last = widths.indices.last { widths[last] = max(8, min(widths[last], width - fixed)) }
        func line(_ cells: [String], paintHeader: Bool) -> String {
            cells.enumerated().map { i, cell in
                var text = cell.count > widths[i] ? String(cell.prefix(widths[i] - 1)) + "…" : cell
                let pad = String(repeating: " ", count: max(0, widths[i] - text.count))
                if paintHeader { text = paint(text, "1") } else if i == colourColumn { text = state(text) }
                return i == cells.count - 1 ? text : text + pad
            }.joined(separator: "  ")
        }
        return ([line(header, paintHeader: true)] + rows.map { line($0, paintHeader: false) }).joined(separator: "\n")
    }
}

/// Writes one JSON document (or NDJSON block) ending in a newline. One unbuffered write: mixing
/// `FileHandle` writes with `print`'s buffered newline put every newline after all the documents.
func printJSON(_ bytes: [UInt8]) {
    fflush(nil)
    FileHandle.standardOutput.write(Data(bytes.last == UInt8(ascii: "\n") ? bytes : bytes + [UInt8(ascii: "\n")]))
}

func writeStderr(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// "3m ago" style ages and compact durations.
func age(_ seconds: Double) -> String {
    let s = max(0, Int(seconds))
    if s < 90 { return "\(s)s" }
    if s < 5400 { return "\(s / 60)m" }
    if s < 172_800 { return "\(s / 3600)h" }
    return "\(s / 86400)d"
}
