// StreamedTaskBridge: the old string-typed calls that `Resources/TaskStreamRoute.swift` still makes.
// That route is being moved off the handler pool on another branch (issue 13, item 3), where it
// records through `VersionWriter.commit(_:)` instead; delete this file once it does. Nothing else
// may call these (they are deprecated so the compiler names every caller).
import Foundation
import Storage

extension ContinualState {
    /// The carried fields as a free-form object.
    @available(*, deprecated, message: "record through VersionWriter with VersionMetrics")
    var metrics: [String: JSONValue] {
        guard case .object(let o)? = JSONValue.parse(try? JSONColumn(versionMetrics)) else { return [:] }
        return o
    }
}

extension StoreSession {
    @available(*, deprecated, message: "record through VersionWriter with VersionMetrics")
    func appendModelVersion(modelID: String, tenantID: String, parentVersion: Int?, reason: VersionReason,
                            metrics: String, weights: Data) throws -> ModelVersion {
        let column = try JSONColumn(try JSONDecoder().decode(JSONValue.self, from: Data(metrics.utf8)))
        return try appendModelVersion(modelID: modelID, tenantID: tenantID, parentVersion: parentVersion, reason: reason,
                                      metrics: column, weights: weights)
    }
}

extension LedgerEntry {
    @available(*, deprecated, message: "record through VersionWriter with LedgerBatch")
    init(modelID: String, version: Int, task: Int, epoch: Int, batchIndex: Int, examples: Data, windows: String) {
        self.init(modelID: modelID, version: version, task: task, epoch: epoch, batchIndex: batchIndex, examples: examples,
                  windows: (try? JSONDecoder().decode([ColumnRange].self, from: Data(windows.utf8))) ?? [])
    }
}
