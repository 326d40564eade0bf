// JSONKeyStrategyTests: the snake_case key strategy of request bodies and responses.
import Foundation
import Testing
@testable import Service
import HTTP
import TestSupport

@Suite struct JSONKeyStrategyTests {
    @Test func swiftNamesAndJSONKeysAreInverse() {
        for (key, name) in [("dataset_id", "datasetID"), ("target_kl", "targetKL"), ("label_loss_weight", "labelLossWeight"),
                            ("image_shape", "imageShape"), ("name", "name"), ("top_k", "topK"), ("next_offset", "nextOffset")] {
            #expect(JSONCoding.swiftName(key) == name)
            #expect(JSONCoding.snakeCase(name) == key)
        }
        #expect(JSONCoding.swiftName("inputDim") == "#inputDim")  // not snake_case: matches no field
        #expect(JSONCoding.swiftName("_x") == "_x" && JSONCoding.swiftName("a__b") == "a__b")
    }

    @Test func requestKeysDecodeAndErrorsNameTheSnakeCaseField() throws {
        let ok = try JSONCoding.decode(CreateModelRequest.self, from: Data(#"{"name":"m","kind":"pfc","input_dim":4,"output_dim":2,"label_loss_weight":0.5}"#.utf8))
        #expect(ok.inputDim == 4 && ok.outputDim == 2 && ok.labelLossWeight == 0.5)
        let perturb = try JSONCoding.decode(PerturbRequest.self, from: Data(#"{"dataset_id":"d","target_kl":[0.1,0.2]}"#.utf8))
        #expect(perturb.datasetID == "d" && perturb.targetKL == [0.1, 0.2])

        func message(_ json: String) -> String {
            do { _ = try JSONCoding.decode(CreateModelRequest.self, from: Data(json.utf8)); return "" } catch let e as HTTPError {
                return e.message
            } catch { return "\(error)" }
        }
        // The camelCase spelling is not an alias of the field.
        #expect(message(#"{"name":"m","kind":"pfc","inputDim":4,"output_dim":2}"#) == "field 'input_dim' is required")
        #expect(message(#"{"name":"m","kind":"pfc","input_dim":"4","output_dim":2}"#) == "field 'input_dim' must be an integer")
        #expect(message(#"{"name":"m","kind":"pfc","input_dim":4,"output_dim":2,"label_loss_weight":1e39}"#).contains("'label_loss_weight'"))
    }

    @Test func responsesAreSnakeCaseAndKeepNulls() throws {
        let page = ListPage(items: [AnalysisCreatedDTO(id: "a", jobID: "j", state: "queued")], nextOffset: nil)
        let text = String(decoding: try JSONCoding.apiEncoder.encode(page), as: UTF8.self)
        #expect(text == #"{"items":[{"id":"a","job_id":"j","state":"queued"}],"next_offset":null}"#)
    }
}
