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
