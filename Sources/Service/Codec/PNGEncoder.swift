// PNGEncoder: 8-bit grayscale PNG files (RFC 2083) with stored (uncompressed) deflate blocks.
import Linalg
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

    /// The layout of a tile grid: `count` tiles of `tileWidth × tileHeight` pixels, `perRow` to a row,
    /// 1-pixel gaps between tiles (no outer border). Nil when a side would overflow.
    static func gridSize(count: Int, perRow: Int, tileWidth: Int, tileHeight: Int) -> (width: Int, height: Int)? {
        guard count >= 1, perRow >= 1, tileWidth >= 1, tileHeight >= 1 else { return nil }
        let across = min(perRow, count), rows = (count + across - 1) / across
        guard let w = CheckedSize.product(across, tileWidth + 1), let h = CheckedSize.product(rows, tileHeight + 1) else { return nil }
        return (w - 1, h - 1)
    }

    /// A grid PNG of `tiles` (each `height × width` values, row-major), tile t at row t / perRow and
    /// column t % perRow, each scaled to 0…255 on its own (a constant tile is black) and magnified
    /// `scale` times (nearest neighbour), with 1-pixel black gaps. Callers bound the sizes.
    static func tileGrid(_ tiles: [[Float]], width w: Int, height h: Int, perRow: Int, scale: Int = 1) -> [UInt8] {
        let tw = w * scale, th = h * scale
        let (width, height) = gridSize(count: tiles.count, perRow: perRow, tileWidth: tw, tileHeight: th)!
        let across = min(perRow, tiles.count)
        var pixels = [UInt8](repeating: 0, count: width * height)
        for (t, values) in tiles.enumerated() {
            let finite = values.filter(\.isFinite)
            let lo = finite.min() ?? 0, hi = finite.max() ?? 0, span = hi > lo ? hi - lo : 0
            let ox = (t % across) * (tw + 1), oy = (t / across) * (th + 1)
            for y in 0..<th {
                let row = (oy + y) * width + ox, src = (y / scale) * w
                for x in 0..<tw {
                    let v = values[src + x / scale]
                    pixels[row + x] = span > 0 && v.isFinite ? UInt8(max(0, min(255, ((v - lo) / span * 255).rounded()))) : 0
                }
            }
        }
        return grayscale(width: width, height: height, pixels: pixels)
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
