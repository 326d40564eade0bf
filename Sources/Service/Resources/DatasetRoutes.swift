// DatasetRoutes: upload (JSON, CSV, streamed NDJSON), list, get and delete datasets.
import Foundation
import HTTP
import PFC
import Storage

/// `/v1/datasets`: needs the store, the upload limits and the dataset quotas.
struct DatasetController: RouteCollection {
    let store: any Store
    let limits: ServiceLimits
    let quotas: TenantQuotas

    func register(on r: inout Router) {
        // Streaming body: NDJSON is consumed as it arrives; JSON and CSV are collected up to their limit.
        var upload = RouteOptions.streaming(maxBodyBytes: limits.maxStreamedDatasetBytes)
        upload.maxBodyBytesByContentType["application/json"] = limits.maxDatasetBytes  // refused on the head when over
        r.post("/v1/datasets", options: upload) { [store, quotas] request, ctx in
            let tenant = try ctx.tenantID()
            try quotas.admitDatasetUpload(tenantID: tenant)
            // Rows past the builder's buffer go straight to the store's content file (SQLite), outside
            // any transaction; the short transaction below only attaches it to the new row.
            let upload = try DatasetUpload.parse(request, limits: limits, contentFile: { try storeCall { try store.makeDatasetBlobFile() } })
            try APIError.refuseNUL(upload.name, field: "name")
            guard let features = upload.builder.features, upload.builder.examples > 0 else {
                throw APIError.invalid("the dataset has no examples")
            }
            let shape = upload.imageShape.map { "[\($0[0]),\($0[1])]" }
            let dataset = Dataset(tenantID: tenant, name: upload.name, examples: upload.builder.examples, features: features,
                                  classes: max(upload.builder.maxLabel + 1, 1), imageShape: shape,
                                  sequenceLength: upload.sequence?.steps, stepFeatures: upload.sequence?.stepFeatures,
                                  labelsPerExample: upload.builder.labelsPerExample ?? 1, minFeature: Double(upload.builder.minFeature))
            let file = try storeCall { try upload.builder.finishFile() }  // durable before any row names it
            let stored = try storeCall {
                try store.transaction { s in
                    try s.insert(dataset)
                    let blob = try file.map { try s.attachDatasetBlob(datasetID: dataset.id, tenantID: tenant, file: $0) }
                        ?? upload.builder.withChunks { next in try s.writeDatasetBlob(datasetID: dataset.id, tenantID: tenant, nextChunk: next) }
                    try quotas.admitDatasetBytes(tenantID: tenant, adding: blob.byteCount, in: s)
                    return try s.dataset(id: dataset.id, tenantID: tenant)
                }
            }
            return try JSONCoding.response(DatasetDTO(stored), status: .created, headers: [("Location", "/v1/datasets/\(stored.id)")])
        }
        r.get("/v1/datasets") { [store] request, ctx in
            let tenant = try ctx.tenantID(), page = try Pagination(request)
            let result = try storeCall { try store.datasets(tenantID: tenant, page: PageRequest(limit: page.limit, offset: page.offset)) }
            return try JSONCoding.response(ListPage(items: result.items.map(DatasetDTO.init), nextOffset: result.nextOffset))
        }
        r.get("/v1/datasets/{id}") { [store] request, ctx in
            let tenant = try ctx.tenantID()
            return try JSONCoding.response(DatasetDTO(try storeCall { try store.dataset(id: try request.pathParameter("id"), tenantID: tenant) }))
        }
        r.delete("/v1/datasets/{id}") { [store] request, ctx in
            let tenant = try ctx.tenantID(), id = try request.pathParameter("id")
            try storeCall {
                try store.transaction { s in
                    _ = try s.dataset(id: id, tenantID: tenant)
                    let active = try s.activeJobCount(datasetID: id)
                    if active > 0 { throw APIError.conflict("dataset \(id) is used by \(active) queued or running job(s); cancel them first") }
                    try s.deleteDataset(id: id, tenantID: tenant)
                }
            }
            return Response(status: .noContent)
        }
    }
}
