// ComponentRoutes: the basis vectors of a model version, with norms, usage and images.
import Foundation
import HTTP
import Linalg
import PFC
import Storage

/// `/v1/models/{id}/components`: needs the store (image shapes) and the models.
struct ComponentController: RouteCollection {
    let store: any Store
    let models: ModelLoader

    func register(on r: inout Router) {
        r.get("/v1/models/{id}/components") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let (v, network) = try models.network(modelID: id, tenantID: tenant, version: try Self.versionQuery(request))
            let block = try Self.blockIndex(request.queryValue("block"), network: network)
            let (wx, wy) = Self.factors(of: network, block: block)!
            let stored = try storeCall { try store.components(modelID: id, version: v, tenantID: tenant, block: block) }
            var usage = [Int: Float]()
            for c in stored {
                if case .number(let m)? = JSONValue.parse(c.norms).flatMap({ if case .object(let o) = $0 { return o["mean_activation"] } else { return nil } }) {
                    usage[c.column] = Float(m)
                }
            }
            let wxNorms = Self.columnNorms(wx), wyNorms = Self.columnNorms(wy)
            let components = (0..<wx.cols).map { k in
                ComponentDTO(block: block, component: k, wxNorm: wxNorms[k], wyNorm: wyNorms[k], meanActivation: usage[k])
            }
            return try JSONCoding.response(ComponentListDTO(modelVersion: v, block: block, components: components))
        }
        r.get("/v1/models/{id}/components/{block}/{file}") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id"), file = try request.pathParameter("file")
            guard file.hasSuffix(".png"), let k = Int(file.dropLast(4)), k >= 0 else {
                throw APIError.notFound("component image \(file) (ask for {component}.png)")
            }
            let (v, network) = try models.network(modelID: id, tenantID: tenant, version: try Self.versionQuery(request))
            let block = try Self.blockIndex(try request.pathParameter("block"), network: network)
            let (wx, _) = Self.factors(of: network, block: block)!
            guard k < wx.cols else { throw APIError.notFound("component \(k) of block \(block)") }
            let shape = try imageShape(modelID: id, version: v, tenantID: tenant, features: wx.rows, query: request.queryValue("shape"))
            var resp = Response(status: .ok, body: .bytes(PNGEncoder.grayscale(width: shape[1], height: shape[0], values: wx.column(k))))
            resp.headers.replaceOrAdd(name: "Content-Type", value: "image/png")
            return resp
        }
        // A block's basis vectors as one PNG grid (the dashboard's parts page, and curl).
        r.get("/v1/models/{id}/components.png") { [self] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            let (v, network) = try models.network(modelID: id, tenantID: tenant, version: try Self.versionQuery(request))
            let block = try Self.blockIndex(request.queryValue("block"), network: network)
            let (wx, _) = Self.factors(of: network, block: block)!
            let columns = try Self.columnRange(request.queryValue("columns"), k: wx.cols)
            let scale = try Self.boundedInteger(request.queryValue("scale"), name: "scale", in: 1...Self.gridMaxScale) ?? 1
            let perRow = try Self.boundedInteger(request.queryValue("per_row"), name: "per_row", in: 1...Self.gridMaxColumns)
                ?? Int(Double(columns.count).squareRoot().rounded(.up))
            let shape = try imageShape(modelID: id, version: v, tenantID: tenant, features: wx.rows, query: request.queryValue("shape"))
            guard shape[0] * scale <= Self.gridMaxTileSide, shape[1] * scale <= Self.gridMaxTileSide else {
                throw APIError.invalid("a tile of \(shape[0])×\(shape[1]) at scale \(scale) is larger than \(Self.gridMaxTileSide)×\(Self.gridMaxTileSide) pixels; grids are for small images")
            }
            let tiles = columns.map { wx.column($0) }
            var resp = Response(status: .ok, body: .bytes(PNGEncoder.tileGrid(tiles, width: shape[1], height: shape[0], perRow: perRow, scale: scale)))
            resp.headers.replaceOrAdd(name: "Content-Type", value: "image/png")
            resp.headers.replaceOrAdd(name: "X-Grid-Columns", value: "\(columns.lowerBound)-\(columns.upperBound - 1)")
            resp.headers.replaceOrAdd(name: "X-Grid-Per-Row", value: "\(min(perRow, columns.count))")
            resp.headers.replaceOrAdd(name: "X-Model-Version", value: "\(v)")
            return resp
        }
    }

    /// Most basis vectors one grid PNG draws (`columns=a-b` spans at most this many).
    static let gridMaxColumns = 500
    /// The largest tile side in pixels (the image side × `scale`): bounds a grid at 500 × 64 × 64 pixels.
    static let gridMaxTileSide = 64
    /// The largest magnification of a tile.
    static let gridMaxScale = 8

    /// `columns=a-b` (inclusive) or `columns=a`: 400 when malformed, 422 past K or wider than
    /// `gridMaxColumns`; absent: the first `gridMaxColumns` columns.
    static func columnRange(_ text: String?, k: Int) throws -> Range<Int> {
        guard let text else { return 0..<min(k, gridMaxColumns) }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.count <= 9 && $0.utf8.allSatisfy { (48...57).contains($0) } }),
              let a = Int(parts[0]), let b = Int(parts.last!), a >= 0, b >= 0 else {
            throw APIError.badRequest("columns must be a range like 0-99 or one column like 7")
        }
        guard a <= b else { throw APIError.badRequest("columns \(text): the first column is after the last") }
        guard b < k else { throw APIError.invalid("columns \(text): the block has \(k) columns (0…\(k - 1))") }
        guard b - a + 1 <= gridMaxColumns else {
            throw APIError.invalid("columns \(text) spans \(b - a + 1) columns; one grid draws at most \(gridMaxColumns)")
        }
        return a..<(b + 1)
    }

    /// An optional integer query parameter in `range`; 400 naming it otherwise.
    static func boundedInteger(_ text: String?, name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text else { return nil }
        guard let n = Int(text), range.contains(n) else {
            throw APIError.badRequest("\(name) must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return n
    }

    /// `?version=`: nil when absent, 400 unless a non-negative integer.
    static func versionQuery(_ request: Request) throws -> Int? {
        try request.queryValue("version").map { v -> Int in
            guard let n = Int(v), n >= 0 else { throw APIError.badRequest("version must be a non-negative integer") }
            return n
        }
    }

    static func blockIndex(_ text: String?, network: any Network) throws -> Int {
        let blocks = network.pfcBlocks.count
        guard blocks > 0 else { throw APIError.invalid("a \(network.architecture.kind.rawValue) model has no PFC blocks or basis vectors") }
        guard let text else { return 0 }
        guard let b = Int(text), (0..<blocks).contains(b) else { throw APIError.invalid("block must be in 0…\(blocks - 1)") }
        return b
    }

    /// W_x and W_y of PFC block `block`; nil when the network has no such block.
    static func factors(of network: any Network, block: Int) -> (Matrix, Matrix)? {
        let blocks = network.pfcBlocks
        guard blocks.indices.contains(block) else { return nil }
        return (blocks[block].wx, blocks[block].wy)
    }

    /// The Euclidean norm of every column, in one pass over the row-major storage.
    static func columnNorms(_ m: Matrix) -> [Float] {
        var sums = [Float](repeating: 0, count: m.cols)
        m.storage.withUnsafeBufferPointer { v in
            sums.withUnsafeMutableBufferPointer { acc in
                for i in 0..<m.rows {
                    let row = i * m.cols
                    for k in 0..<m.cols { acc[k] += v[row + k] * v[row + k] }
                }
            }
        }
        return sums.map { $0.squareRoot() }
    }

    /// The image shape to render with: `?shape=h,w`, else the shape of the dataset that trained the version.
    func imageShape(modelID: String, version: Int, tenantID: String, features: Int, query: String?) throws -> [Int] {
        let shape: [Int]?
        if let query {
            shape = try ImageShape.parse(query: query, name: "shape")
        } else {
            let v = try storeCall { try store.modelVersion(modelID: modelID, version: version, tenantID: tenantID) }
            if case .object(let o)? = JSONValue.parse(v.metrics) { shape = ImageShape.stored(o["image_shape"]) } else { shape = nil }
        }
        guard let shape else {
            throw APIError.invalid("no image shape is known for this model version; pass ?shape=height,width")
        }
        let s = try ImageShape.validate(shape, features: features, name: "shape")
        return s
    }
}
