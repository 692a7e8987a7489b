@main
struct Reeld {
    static func main() {}
}
