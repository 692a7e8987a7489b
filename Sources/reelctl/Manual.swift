import ArgumentParser
import Foundation

/// `reelctl generate-manual`: the reelctl(1) man page in roff, built from the command definitions themselves
/// (each verb's abstract, discussion and `--help` text), so the page cannot drift from the CLI.
/// `docs/man/reelctl.1` is its committed output; a test keeps the two identical.
struct GenerateManual: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-manual", abstract: "Print the reelctl(1) man page (roff) to stdout.",
        shouldDisplay: false)

    func run() throws { print(Self.page(), terminator: "") }

    static func page() -> String {
        let root = Reelctl.configuration
        var out = """
            .TH REELCTL 1 "" "reel" "User Commands"
            .SH NAME
            reelctl \\- \(roff(root.abstract))
            .SH SYNOPSIS
            .B reelctl
            .I command
            [\\fB\\-\\-socket\\fR \\fIpath\\fR] [\\fB\\-\\-json\\fR] [\\fIarguments\\fR]
            .SH DESCRIPTION
            \(root.discussion.split(separator: "\n").map { roff(String($0)) }.joined(separator: "\n.br\n"))
            .SH COMMANDS

            """
        for command in root.subcommands where command.configuration.shouldDisplay {
            let name = command._commandName
            out += ".SS \(roff(name))\n\(roff(command.configuration.abstract))\n"
            let help = Reelctl.helpMessage(for: command, columns: 100)
                .split(separator: "\n", omittingEmptySubsequences: false)
                .drop { !$0.hasPrefix("USAGE:") && !$0.hasPrefix("ARGUMENTS:") && !$0.hasPrefix("OPTIONS:") }
            out += ".PP\n.nf\n" + help.map { roff(String($0), literal: true) }.joined(separator: "\n") + "\n.fi\n"
        }
        out += """
            .SH ENVIRONMENT
            .TP
            .B REEL_SOCKET
            The control socket when \\fB\\-\\-socket\\fR is not given (default /run/reel/reel.sock).
            .TP
            .B NO_COLOR
            Disables colour in tables.
            .SH EXIT STATUS
            0 ok, 1 the operation failed, 2 usage error, 69 reeld unreachable (the message names the socket and a hint).
            .SH FILES
            .TP
            .I /run/reel/reel.sock
            The control socket: members of its group may read; mutations need root, the daemon's user or the
            configured admin group.
            .SH SEE ALSO
            .BR reeld (8),
            .BR systemctl (1)

            """
        return out
    }

    /// Escapes text for roff: backslashes, and a leading `.` or `'` that would read as a request.
    static func roff(_ text: String, literal: Bool = false) -> String {
        var t = text.replacingOccurrences(of: "\\", with: "\\e")
        if !literal { t = t.replacingOccurrences(of: "-", with: "\\-") }
        if t.hasPrefix(".") || t.hasPrefix("'") { t = "\\&" + t }
        return t
    }
}
