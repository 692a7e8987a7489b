@main
struct ReelSandboxMain {
    static func main() {}
}
