// Dataset: a stored training or evaluation set; its bytes live in chunked `dataset_blobs`.
import Foundation

/// A dataset's metadata. `checksum` (SHA-256 hex) and `byteSize` are set by `writeDatasetBlob`.
public struct Dataset: Codable, Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var name: String
    public var examples: Int
    public var features: Int
    public var classes: Int
    /// JSON array such as `[28,28,1]`, or nil for non-image data.
    public var imageShape: String?
    /// Steps T per example when the dataset has a sequence form (each example is T steps of
    /// `stepFeatures` numbers, `features` = T·d); nil for flat data.
    public var sequenceLength: Int?
    /// Numbers d per step of a sequence dataset; nil for flat data.
    public var stepFeatures: Int?
    /// Labels stored per example: 1 (one per sequence or flat example) or T (one per step).
    public var labelsPerExample: Int
    /// The smallest feature value (nil when unknown: stored before migration 0002).
    public var minFeature: Double?
    public var checksum: String
    public var byteSize: Int
    public var createdAt: Date

    /// A new dataset with a fresh id and no bytes yet.
    public init(id: String = StoreID.make(), tenantID: String, name: String, examples: Int, features: Int,
                classes: Int, imageShape: String? = nil, sequenceLength: Int? = nil, stepFeatures: Int? = nil,
                labelsPerExample: Int = 1, minFeature: Double? = nil, checksum: String = "", byteSize: Int = 0,
                createdAt: Date = StoreClock.now()) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.examples = examples
        self.features = features
        self.classes = classes
        self.imageShape = imageShape
        self.sequenceLength = sequenceLength
        self.stepFeatures = stepFeatures
        self.labelsPerExample = labelsPerExample
        self.minFeature = minFeature
        self.checksum = checksum
        self.byteSize = byteSize
        self.createdAt = createdAt
    }

    init(row: Row) throws {
        self.init(id: try row.string("id"), tenantID: try row.string("tenant_id"), name: try row.string("name"),
                  examples: try row.int("examples"), features: try row.int("features"), classes: try row.int("classes"),
                  imageShape: try row.optionalString("image_shape"), sequenceLength: try row.optionalInt("sequence_length"),
                  stepFeatures: try row.optionalInt("step_features"), labelsPerExample: try row.int("labels_per_example"),
                  minFeature: try row.optionalDouble("min_feature"),
                  checksum: try row.string("checksum"),
                  byteSize: try row.int("byte_size"), createdAt: try row.date("created_at"))
    }
}

/// What `writeDatasetBlob` stored.
public struct BlobSummary: Sendable, Equatable {
    public var byteCount: Int
    public var chunkCount: Int
    /// Lowercase hex SHA-256 of all bytes in order.
    public var sha256: String
}
