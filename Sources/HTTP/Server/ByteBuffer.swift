// ByteBuffer: a growable byte queue with a read index, for a connection's input and output.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct ByteBuffer {
    private var storage: [UInt8] = []
    private var start = 0
    private var end = 0

    /// Bytes between the read and write indices.
    var readable: Int { end - start }
    var isEmpty: Bool { end == start }
    var capacity: Int { storage.count }

    /// Calls `body` with the readable bytes.
    func withReadable<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try storage.withUnsafeBytes { raw in try body(UnsafeRawBufferPointer(rebasing: raw[start..<end])) }
    }

    /// Drops `n` readable bytes.
    mutating func consume(_ n: Int) {
        start += n
        if start == end { start = 0; end = 0 }
    }

    /// Appends bytes.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count)
        storage.withUnsafeMutableBytes { raw in
            UnsafeMutableRawBufferPointer(rebasing: raw[end..<(end + bytes.count)]).copyMemory(from: bytes)
        }
        end += bytes.count
    }

    /// Makes room for `n` more bytes after the write index.
    mutating func reserve(_ n: Int) {
        if storage.count - end >= n { return }
        if start > 0 {
            let count = end - start
            storage.withUnsafeMutableBytes { raw in
                guard let base = raw.baseAddress else { return }
                memmove(base, base + start, count)
            }
            start = 0
            end = count
            if storage.count - end >= n { return }
        }
        // Grow geometrically (from 4 KiB) into a fresh zeroed array (memset-fast even in debug builds).
        let newCount = max(end + n, storage.count * 2, 4096)
        var grown = [UInt8](repeating: 0, count: newCount)
        if end > 0 {
            grown.withUnsafeMutableBytes { dst in storage.withUnsafeBytes { src in dst.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: end) } }
        }
        storage = grown
    }

    /// One transport read into free space (at most `n` bytes).
    mutating func receive(upTo n: Int, via transport: Transport) -> TransportIO {
        reserve(n)
        let result = storage.withUnsafeMutableBytes { raw in transport.read(into: raw.baseAddress! + end, count: n) }
        if case .bytes(let got) = result { end += got }
        return result
    }

    /// Releases a large empty buffer (idle keep-alive connections stay small).
    mutating func shrinkIfIdle(keep: Int) {
        if start == end && storage.count > keep { storage = []; start = 0; end = 0 }
    }
}
