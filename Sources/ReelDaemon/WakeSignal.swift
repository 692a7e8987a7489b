import Synchronization

/// A one-waiter alarm: `wait(seconds:)` returns when the time is up, when `ring()` is called, or when the waiting
/// task is cancelled, whichever comes first. A ring while nobody waits is kept for the next wait, so a ring is
/// never lost between two waits (at worst it costs one extra turn of the waiter's loop).
final class WakeSignal: Sendable {
    private struct State {
        var waiter: CheckedContinuation<Void, Never>?
        var rung = false
    }
    private let state = Mutex(State())

    init() {}

    func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.rung = true
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Waits for a ring, at most `seconds` (nil: no time limit).
    func wait(seconds: Double?) async {
        guard let seconds else {
            await waitForRing()
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: .seconds(max(0, seconds))) }
            group.addTask { await self.waitForRing() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForRing() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.rung {
                        s.rung = false
                        return true
                    }
                    if Task.isCancelled { return true }
                    s.waiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            // The continuation is resumed once: by this handler or by `ring`, whichever takes it from the state.
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }
}
