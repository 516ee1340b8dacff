import Foundation
import Testing
import Layers
import RunConfiguration

/// `backbone.kind`: the field's backbones are chosen, defaulted and checked by the configuration.
@Suite struct BackboneKindTests {
    func decode(_ json: String) throws(ConfigurationError) -> TrainingConfiguration {
        try TrainingConfiguration.decode(json: Data(json.utf8), source: "c.json")
    }

    func decodeError(_ json: String) -> ConfigurationError? {
        do { _ = try decode(json); return nil } catch { return error }
    }

    @Test("no kind is the default CNN, unchanged; its JSON names kind \"default\" and no depth")
    func defaultKind() throws {
        let c = try decode("{}")
        #expect(c.backbone == BackboneConfiguration())
        #expect(c.backbone.kind == .default && c.backbone.depth == nil)
        let object = try JSONSerialization.jsonObject(with: c.jsonData()) as? [String: Any]
        let backbone = object?["backbone"] as? [String: Any]
        #expect(backbone?["kind"] as? String == "default")
        #expect(backbone?.keys.contains("depth") == false)
        #expect(backbone?.keys.contains("stageChannels") == true)
    }

    @Test("kind iresnet with a depth takes arcface_torch's defaults (RGB 112×112, D 512, dropout 0) and round-trips")
    func iresnet() throws {
        let c = try decode(#"{"backbone": {"kind": "iresnet", "depth": 50}}"#)
        #expect(c.backbone == BackboneConfiguration(kind: .iresnet, depth: 50))
        #expect([c.backbone.inputChannels, c.backbone.inputHeight, c.backbone.inputWidth, c.backbone.embeddingDimension] == [3, 112, 112, 512] as [Int])
        #expect(c.backbone.dropout == 0)
        #expect(try TrainingConfiguration.decode(json: c.jsonData()) == c)
        let backbone = (try JSONSerialization.jsonObject(with: c.jsonData()) as? [String: Any])?["backbone"] as? [String: Any]
        #expect(backbone?["depth"] as? Int == 50)
        #expect(backbone?.keys.contains("stageChannels") == false && backbone?.keys.contains("residual") == false)
        let mbf = try decode(#"{"backbone": {"kind": "mobilefacenet", "embeddingDimension": 256}}"#)
        #expect(mbf.backbone == BackboneConfiguration(kind: .mobilefacenet, embeddingDimension: 256))
        #expect(try TrainingConfiguration.decode(json: mbf.jsonData()) == mbf)
    }

    @Test("a wrong depth, a missing depth, a depth without IResNet, stage keys with a family, an unknown kind: errors at the key")
    func decodingErrors() {
        func reason(_ json: String) -> (key: String, reason: String)? {
            guard case let .invalidValue(_, key, reason)? = decodeError(json) else { return nil }
            return (key, reason)
        }
        #expect(reason(#"{"backbone": {"kind": "iresnet", "depth": 51}}"#)?.key == "backbone.depth")
        #expect(reason(#"{"backbone": {"kind": "iresnet", "depth": 51}}"#)?.reason.contains("[18, 34, 50, 100]") == true)
        #expect(reason(#"{"backbone": {"kind": "iresnet"}}"#)?.reason.contains("needs a depth") == true)
        #expect(reason(#"{"backbone": {"depth": 50}}"#)?.key == "backbone.depth")
        #expect(reason(#"{"backbone": {"kind": "mobilefacenet", "depth": 50}}"#)?.key == "backbone.depth")
        // The default CNN's keys are not keys of a family (its JSON has none).
        guard case let .unknownKey(_, key, known)? = decodeError(#"{"backbone": {"kind": "iresnet", "depth": 18, "stageChannels": [4]}}"#) else {
            Issue.record("stageChannels with kind iresnet decoded")
            return
        }
        #expect(key == "backbone.stageChannels" && known.contains("depth") && !known.contains("residual"))
        #expect(decodeError(#"{"backbone": {"kind": "mobilefacenet", "residual": true}}"#)?.description.contains("backbone.residual") == true)
        #expect(reason(#"{"backbone": {"kind": "resnet"}}"#)?.key == "backbone.kind")
        #expect(reason(#"{"backbone": {"kind": "resnet"}}"#)?.reason.contains("mobilefacenet") == true)
        #expect(reason(#"{"backbone": {"kind": "iresnet", "depth": 18, "dept": 1}}"#) == nil)   // an unknown key, as before
        #expect(decodeError(#"{"backbone": {"kind": "iresnet", "depth": 18, "dept": 1}}"#) != nil)
    }

    @Test("validation: a family needs RGB 112×112, MobileFaceNet no dropout; the default CNN's stage checks do not apply")
    func validation() throws {
        #expect(decodeError(#"{"backbone": {"kind": "iresnet", "depth": 34, "inputHeight": 96}}"#)?.description.contains("112×112") == true)
        #expect(decodeError(#"{"backbone": {"kind": "iresnet", "depth": 34, "inputChannels": 1}}"#)?.description.contains("RGB") == true)
        #expect(decodeError(#"{"backbone": {"kind": "mobilefacenet", "dropout": 0.2}}"#)?.description.contains("no dropout") == true)
        #expect(decodeError(#"{"backbone": {"kind": "iresnet", "depth": 100, "dropout": 0.4}}"#) == nil)
        var c = TrainingConfiguration()
        c.backbone = BackboneConfiguration(kind: .iresnet, depth: 18)
        #expect(c.validationProblems().isEmpty)
        c.backbone.depth = 19
        #expect(c.validationProblems().contains { $0.contains("backbone.depth must be one of [18, 34, 50, 100]") })
    }

    @Test("the configs/ files of the families decode and validate")
    func configFiles() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let expected: [String: BackboneConfiguration] = [
            "ms1m_iresnet18.json": BackboneConfiguration(kind: .iresnet, depth: 18),
            "ms1m_iresnet50.json": BackboneConfiguration(kind: .iresnet, depth: 50),
            "ms1m_iresnet100.json": BackboneConfiguration(kind: .iresnet, depth: 100),
            "ms1m_mobilefacenet.json": BackboneConfiguration(kind: .mobilefacenet),
            "ms1m_mobilefacenet_large.json": .mobileFaceNet(blocks: [2, 8, 12, 4], scale: 4),
        ]
        for (file, backbone) in expected {
            let data = try Data(contentsOf: root.appendingPathComponent("configs/\(file)"))
            let c = try TrainingConfiguration.decode(json: data, source: file)
            #expect(c.backbone == backbone, "\(file)")
        }
    }

    @Test("MobileFaceNet blocks and scale: get_mbf's by default, given ones round-trip; bad values and other kinds are errors at the key")
    func mobileFaceNetWidthAndDepth() throws {
        let mbf = try decode(#"{"backbone": {"kind": "mobilefacenet"}}"#)
        #expect(mbf.backbone.blocks == [1, 4, 6, 2] && mbf.backbone.scale == 2)
        let large = try decode(#"{"backbone": {"kind": "mobilefacenet", "blocks": [2, 8, 12, 4], "scale": 4}}"#)
        #expect(large.backbone == .mobileFaceNet(blocks: [2, 8, 12, 4], scale: 4))
        #expect(large.backbone.mobileFaceNetArchitecture == MobileFaceNetArchitecture(blocks: [2, 8, 12, 4], scale: 4))
        #expect(try TrainingConfiguration.decode(json: large.jsonData()) == large)
        let backbone = (try JSONSerialization.jsonObject(with: large.jsonData()) as? [String: Any])?["backbone"] as? [String: Any]
        #expect(backbone?["blocks"] as? [Int] == [2, 8, 12, 4] && backbone?["scale"] as? Int == 4)
        // A stored MobileFaceNet configuration from before the keys existed decodes to get_mbf.
        #expect(try decode(#"{"backbone": {"kind": "mobilefacenet", "inputChannels": 3, "embeddingDimension": 512, "dropout": 0}}"#).backbone
                == BackboneConfiguration(kind: .mobilefacenet))
        // The default CNN and IResNet encode neither key.
        let r18 = (try JSONSerialization.jsonObject(with: decode(#"{"backbone": {"kind": "iresnet", "depth": 18}}"#).jsonData()) as? [String: Any])?["backbone"] as? [String: Any]
        #expect(r18?.keys.contains("blocks") == false && r18?.keys.contains("scale") == false)

        func problems(_ json: String) -> [String] {
            guard case let .outOfRange(_, problems)? = decodeError(json) else { return [] }
            return problems
        }
        #expect(problems(#"{"backbone": {"kind": "mobilefacenet", "blocks": [1, 4, 6]}}"#).contains { $0.hasPrefix("backbone.blocks must be 4 block counts") })
        #expect(problems(#"{"backbone": {"kind": "mobilefacenet", "blocks": [0, 4, 6, 2]}}"#).contains { $0.hasPrefix("backbone.blocks") })
        #expect(problems(#"{"backbone": {"kind": "mobilefacenet", "blocks": [1, 4, 65, 2]}}"#).contains { $0.hasPrefix("backbone.blocks") })
        #expect(problems(#"{"backbone": {"kind": "mobilefacenet", "scale": 0}}"#).contains { $0.hasPrefix("backbone.scale") })
        #expect(problems(#"{"backbone": {"kind": "mobilefacenet", "scale": 17}}"#).contains { $0.hasPrefix("backbone.scale") })
        func key(_ json: String) -> String? {
            guard case let .invalidValue(_, key, _)? = decodeError(json) else { return nil }
            return key
        }
        #expect(key(#"{"backbone": {"kind": "iresnet", "depth": 18, "scale": 2}}"#) == "backbone.scale")
        #expect(key(#"{"backbone": {"blocks": [1, 4, 6, 2]}}"#) == "backbone.blocks")
        #expect(key(#"{"backbone": {"kind": "mobilefacenet", "scale": 2.5}}"#) == "backbone.scale")
        #expect(key(#"{"backbone": {"kind": "mobilefacenet", "blocks": 2}}"#) == "backbone.blocks")
        var c = TrainingConfiguration()
        c.backbone = BackboneConfiguration(kind: .iresnet, depth: 18)
        c.backbone.scale = 2
        #expect(c.validationProblems().contains("backbone.scale applies to kind mobilefacenet only, not iresnet"))
    }
}
