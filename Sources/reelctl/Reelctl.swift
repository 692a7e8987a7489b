@main
struct Reelctl {
    static func main() {}
}
