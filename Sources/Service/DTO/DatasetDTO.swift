// DatasetDTO: the JSON shape of a dataset.
import Foundation
import Storage

/// A dataset as the API shows it.
struct DatasetDTO: Encodable {
    var id: String
    var name: String
    var examples: Int
    var features: Int
    var classes: Int
    var imageShape: [Int]?
    var sequenceLength: Int?
    var stepFeatures: Int?
    var labelsPerStep: Bool
    var createdAt: Date

    enum CodingKeys: CodingKey {
        case id, name, examples, features, classes, imageShape, createdAt, sequenceLength, stepFeatures, labelsPerStep
    }

    init(_ d: Dataset) {
        id = d.id
        name = d.name
        examples = d.examples
        features = d.features
        classes = d.classes
        imageShape = d.imageShape.flatMap { try? JSONDecoder().decode([Int].self, from: Data($0.utf8)) }
        sequenceLength = d.sequenceLength
        stepFeatures = d.stepFeatures
        labelsPerStep = d.labelsPerExample > 1
        createdAt = d.createdAt
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(examples, forKey: .examples)
        try c.encode(features, forKey: .features)
        try c.encode(classes, forKey: .classes)
        try c.encode(imageShape, forKey: .imageShape)
        try c.encode(sequenceLength, forKey: .sequenceLength)
        try c.encode(stepFeatures, forKey: .stepFeatures)
        try c.encode(labelsPerStep, forKey: .labelsPerStep)
        try c.encode(createdAt, forKey: .createdAt)
    }
}
