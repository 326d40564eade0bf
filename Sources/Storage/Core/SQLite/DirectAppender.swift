// DirectAppender: appends a large file in aligned 4 MiB blocks with O_DIRECT, so an upload's bytes go
// from one reused buffer to the disk without passing through the page cache.
//
// Why: profiling a 47 MB `.npy` upload on the benchmark VM put 58 % of the server's CPU in the kernel's
// copy into freshly allocated page-cache pages (`copy_folio_from_iter_atomic`); the bytes are
// `fdatasync`ed before the 201 anyway, so the cache bought nothing. The unaligned remainder (at most
// one block) is written through the page cache by the owner (`DatasetBlobFile`) when it drains the
// appender. Where the file system refuses O_DIRECT (tmpfs on older kernels, some FUSE mounts), `init`
// returns nil, or the first refused block and all later ones go through the owner's ordinary descriptor.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class DirectAppender {
    /// The block written at once; a multiple of every logical block size in use (512, 4096).
    static let blockBytes = 4 << 20
    static let alignment = 4096

    #if arch(x86_64)
    static let directFlag: Int32 = 0o40000  // O_DIRECT; Swift's Glibc module leaves it out (_GNU_SOURCE)
    #elseif arch(arm64)
    static let directFlag: Int32 = 0o200000
    #else
    static let directFlag: Int32 = 0
    #endif

    private let directFD: Int32
    /// The owner's ordinary descriptor of the same file: blocks go through it once a direct write is refused.
    private let bufferedFD: Int32
    private var refused = false
    private let buffer: UnsafeMutableRawPointer
    private var count = 0
    /// Bytes already written (always a multiple of `blockBytes`).
    private(set) var written = 0

    /// Opens `path` (an existing, empty file, open as `bufferedFD` too) for direct writes; nil where
    /// that is not possible.
    init?(path: String, bufferedFD: Int32) {
        guard Self.directFlag != 0 else { return nil }
        let fd = open(path, O_WRONLY | O_CLOEXEC | Self.directFlag)
        guard fd >= 0 else { return nil }
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, Self.alignment, Self.blockBytes) == 0, let memory else {
            close(fd)
            return nil
        }
        directFD = fd
        self.bufferedFD = bufferedFD
        buffer = memory
    }

    deinit {
        close(directFD)
        free(buffer)
    }

    /// The bytes accepted but not yet written (less than one block): the owner writes them at
    /// offset `written` when it stops using the appender.
    var staged: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: buffer, count: count) }

    /// Stages `bytes`, writing every block that fills.
    func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let n = min(Self.blockBytes - count, bytes.count - offset)
            (buffer + count).copyMemory(from: base + offset, byteCount: n)
            count += n
            offset += n
            if count == Self.blockBytes { try writeBlock() }
        }
    }

    private func writeBlock() throws {
        var done = 0
        while done < count {
            let fd = refused ? bufferedFD : directFD
            let n = pwrite(fd, buffer + done, count - done, off_t(written + done))
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EINVAL && !refused { refused = true; continue }  // no direct I/O here after all
                throw DatasetBlobFile.failure("cannot write a dataset blob file")
            }
            done += n
        }
        written += count
        count = 0
    }
}
