// EventLoop: the read readiness of connections, watched by epoll(7) on a few threads of our own
// (one per core, shared by every server in the process), each connection pinned to one loop.
//
// Why not a DispatchSourceRead: libdispatch's manager thread takes the epoll event, re-arms the fd
// (two epoll_ctl calls) and wakes a worker thread to run the handler: a context switch and three
// extra syscalls per request, most of the time of a small request. Here the loop thread that took
// the event runs the connection's read handler itself, through `queue.sync` (inline on the loop
// thread; it only waits when a handler thread is sending on that connection at that moment), so
// connection state stays confined to its queue. The registration is level-triggered and stays
// armed across requests: no epoll_ctl per request, only when a connection pauses or resumes reading.
//
// Writes (only when the socket buffer is full) and timers stay on Dispatch sources.

#if canImport(Glibc)
import Glibc
import Foundation
import Synchronization

// Glibc's Swift module leaves out <sys/epoll.h>: the three calls, declared here (integer and pointer
// arguments only, which the Swift and C calling conventions pass alike), and its constants.
@_silgen_name("epoll_create1") private func sys_epoll_create1(_ flags: Int32) -> Int32
@_silgen_name("epoll_ctl") private func sys_epoll_ctl(_ epfd: Int32, _ op: Int32, _ fd: Int32, _ event: UnsafeMutableRawPointer?) -> Int32
@_silgen_name("epoll_wait") private func sys_epoll_wait(_ epfd: Int32, _ events: UnsafeMutableRawPointer, _ maxEvents: Int32, _ timeout: Int32) -> Int32

private enum Epoll {
    static let cloexec: Int32 = 0o2000000  // EPOLL_CLOEXEC = O_CLOEXEC
    static let ctlAdd: Int32 = 1
    static let ctlDel: Int32 = 2
    static let input: UInt32 = 0x001      // EPOLLIN
    static let peerClosed: UInt32 = 0x2000  // EPOLLRDHUP
    // struct epoll_event { uint32_t events; epoll_data_t data; }: packed on x86-64 (12 bytes).
    #if arch(x86_64)
    static let eventSize = 12
    static let dataOffset = 4
    #else
    static let eventSize = 16
    static let dataOffset = 8
    #endif
}

final class EventLoop: @unchecked Sendable {
    /// The process's loops, one per core, started on first use.
    static let shared: [EventLoop] = {
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        return (0..<cores).map { EventLoop(index: $0) }
    }()
    private static let next = Atomic<Int>(0)

    /// The loop the next connection is pinned to (round-robin).
    static func pick() -> EventLoop {
        let loops = shared
        return loops[next.add(1, ordering: .relaxed).oldValue % loops.count]
    }

    private let epfd: Int32
    /// The connection of each watched fd. Guarded by `lock`.
    private let lock = ConditionLock()
    private var watched: [Int32: Connection] = [:]

    private init(index: Int) {
        epfd = sys_epoll_create1(Epoll.cloexec)
        precondition(epfd >= 0, "epoll_create1: \(String(cString: strerror(errno)))")
        let thread = Thread { [self] in run() }
        thread.name = "pfc-http-loop-\(index)"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Starts watching `connection`'s fd for input (on its queue).
    func register(_ connection: Connection) {
        lock.withLock { watched[connection.fd] = connection }
        setInterest(connection.fd, true)
    }

    /// Watches `fd` for input, or stops (on its connection's queue). A stopped fd is removed from the
    /// epoll set, so a reset peer's EPOLLHUP cannot spin the loop while reading is paused.
    func setInterest(_ fd: Int32, _ on: Bool) {
        if on {
            withUnsafeTemporaryAllocation(byteCount: 16, alignment: 8) { event in
                event.initializeMemory(as: UInt8.self, repeating: 0)
                event.storeBytes(of: Epoll.input | Epoll.peerClosed, toByteOffset: 0, as: UInt32.self)
                event.storeBytes(of: fd, toByteOffset: Epoll.dataOffset, as: Int32.self)
                _ = sys_epoll_ctl(epfd, Epoll.ctlAdd, fd, event.baseAddress)
            }
        } else {
            _ = sys_epoll_ctl(epfd, Epoll.ctlDel, fd, nil)
        }
    }

    /// Stops watching `fd` for good (on its connection's queue, before the fd is closed). An event
    /// the loop took just before still reaches the connection, which ignores it once closed.
    func deregister(_ fd: Int32, watching: Bool) {
        if watching { _ = sys_epoll_ctl(epfd, Epoll.ctlDel, fd, nil) }
        lock.withLock { _ = watched.removeValue(forKey: fd) }
    }

    /// Marks the loop threads (`HTTPServer.isEventLoopThread`): a non-nil value under this key.
    static let threadKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    private func run() {
        pthread_setspecific(Self.threadKey, UnsafeRawPointer(bitPattern: 1))
        let capacity = 256
        let events = UnsafeMutableRawPointer.allocate(byteCount: capacity * Epoll.eventSize, alignment: 8)
        var ready: [Connection] = []
        ready.reserveCapacity(capacity)
        while true {
            let n = sys_epoll_wait(epfd, events, Int32(capacity), -1)
            if n < 0 {
                if errno == EINTR { continue }
                fatalError("epoll_wait: \(String(cString: strerror(errno)))")
            }
            lock.lock()
            for i in 0..<Int(n) {
                let fd = events.loadUnaligned(fromByteOffset: i * Epoll.eventSize + Epoll.dataOffset, as: Int32.self)
                if let c = watched[fd] { ready.append(c) }
            }
            lock.unlock()
            for c in ready { c.queue.sync { c.readEvent() } }
            ready.removeAll(keepingCapacity: true)
        }
    }
}
#endif

extension HTTPServer {
    /// Whether the calling thread is one of the event loops, which run `.connectionQueue` routes
    /// inline: code there must not wait for other requests (a store gives such threads their own
    /// database reader, `SQLiteStore.giveOwnReaders`).
    public static var isEventLoopThread: Bool {
        #if canImport(Glibc)
        pthread_getspecific(EventLoop.threadKey) != nil
        #else
        false
        #endif
    }
}
