import Glibc
import SystemPackage

/// Two pieces of work at once: one on a short-lived thread of its own, one on the caller's.
///
/// For the few jobs that are large, split in two cleanly, and wait on the kernel in both
/// halves (the merge of a directory with tens of thousands of names, whose layers are read
/// apart: `LayerStack.orderedListing`). Making and joining a thread costs tens of
/// microseconds, so callers use it only past a size where that is noise.
package enum Alongside {
    /// Runs `side` on a new thread while the caller runs `main`, and returns both results once
    /// both are done (the thread is always joined, also when `main` throws). Where no thread can
    /// be made, `side` runs after `main` on the caller's thread.
    package static func run<A, B>(_ main: () throws(Errno) -> A,
                          alongside side: @escaping @Sendable () throws(Errno) -> B) throws(Errno) -> (A, B) {
        let job = Job(side)
        var thread = pthread_t()
        let context = Unmanaged<SideWork>.passRetained(job).toOpaque()
        let started = pthread_create(&thread, nil, { arg in
            // A thread starts with its maker's policy. A ring worker may be at SCHED_IDLE
            // (`IdleWaitGuard`), which runs only when nothing else wants the CPU; while the
            // worker sleeps waiting for this thread, the guard, which looks for a runnable
            // worker that does not run, sees nothing. So the side works at SCHED_OTHER. (The
            // guard is on only where leaving SCHED_IDLE is allowed.)
            if (try? Sys.schedulingPolicy(thread: 0)) == .idle { try? Sys.setSchedulingPolicy(.normal, thread: 0) }
            Unmanaged<SideWork>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, context) == 0
        if !started {
            Unmanaged<SideWork>.fromOpaque(context).release()
            job.run()
        }
        let first: Result<A, Errno> = Result { () throws(Errno) -> A in try main() }
        if started { pthread_join(thread, nil) }
        let second = job.result ?? .failure(.ioError)  // always set once joined
        return (try first.get(), try second.get())
    }

    /// What the thread runs (not generic, so the thread's entry can name it).
    private class SideWork: @unchecked Sendable {
        func run() {}
    }

    /// The side's work and, once the thread is joined, its result.
    private final class Job<B>: SideWork, @unchecked Sendable {
        let body: @Sendable () throws(Errno) -> B
        /// Written by the side thread before it ends; read only after `pthread_join`.
        var result: Result<B, Errno>?
        init(_ body: @escaping @Sendable () throws(Errno) -> B) { self.body = body }
        override func run() { result = Result { () throws(Errno) -> B in try body() } }
    }
}
