// PNGEncoder: 8-bit grayscale PNG files (RFC 2083) with stored (uncompressed) deflate blocks.
import PFC

/// Writes grayscale PNG images. Basis vectors are small (e.g. 28×28), so the deflate stream uses
/// stored blocks: valid PNG without a compressor.
enum PNGEncoder {
    /// A PNG of `pixels` (row-major, `height × width`, 0…255).
    static func grayscale(width: Int, height: Int, pixels: [UInt8]) -> [UInt8] {
        precondition(pixels.count == width * height)
        var raw = [UInt8]()
        raw.reserveCapacity(height * (width + 1))
        for y in 0..<height {
            raw.append(0) // filter: none
            raw.append(contentsOf: pixels[(y * width)..<((y + 1) * width)])
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var ihdr = [UInt8]()
        be32(UInt32(width), &ihdr); be32(UInt32(height), &ihdr)
        ihdr += [8, 0, 0, 0, 0] // bit depth 8, colour type 0 (gray), deflate, filter 0, no interlace
        chunk("IHDR", ihdr, &png)
        chunk("IDAT", zlibStored(raw), &png)
        chunk("IEND", [], &png)
        return png
    }

    /// Scales `values` linearly onto 0…255 (min → 0, max → 255) and encodes them.
    static func grayscale(width: Int, height: Int, values: [Float]) -> [UInt8] {
        let lo = values.min() ?? 0, hi = values.max() ?? 1
        let span = hi > lo ? hi - lo : 1
        return grayscale(width: width, height: height, pixels: values.map { UInt8(max(0, min(255, (($0 - lo) / span * 255).rounded()))) })
    }

    static func be32(_ v: UInt32, _ out: inout [UInt8]) {
        out += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    static func chunk(_ type: String, _ data: [UInt8], _ out: inout [UInt8]) {
        be32(UInt32(data.count), &out)
        let body = Array(type.utf8) + data
        out += body
        be32(CRC32.checksum(body), &out)
    }

    /// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 §3.2.4) with its Adler-32.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, data.count - offset)
            let last: UInt8 = offset + n >= data.count ? 1 : 0
            out += [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        be32(b << 16 | a, &out)
        return out
    }
}
