// SQLiteFileMode: the database file, its -wal and -shm are readable by their owner only (0600).
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Makes a SQLite database private to its owner before SQLite opens it: a missing file is
/// created empty with mode 0600 (SQLite then creates `-wal` and `-shm` with the database file's
/// mode), and an existing database, `-wal` or `-shm` that grants group or other any access is
/// narrowed to its owner bits. The directory, when this creates it, is 0700.
enum SQLiteFileMode {
    /// The mode of every file of the database.
    static let fileMode: mode_t = 0o600

    /// Creates the parent directory (0700) and the file (0600) if missing; narrows existing files.
    static func secure(databasePath path: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError.connectionFailed(message: "cannot create directory \(directory): \(error)")
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, fileMode)
        guard fd >= 0 else {
            throw StoreError.connectionFailed(message: "cannot create SQLite database \(path): \(String(cString: strerror(errno)))")
        }
        close(fd)
        for file in [path, path + "-wal", path + "-shm"] {
            var info = stat()
            guard stat(file, &info) == 0, info.st_mode & 0o077 != 0 else { continue }
            guard chmod(file, info.st_mode & 0o700) == 0 else {
                throw StoreError.connectionFailed(message: "cannot make \(file) private (chmod): \(String(cString: strerror(errno)))")
            }
        }
    }
}
