// `backbone.kind` in configuration files: a file that names another kind than its base starts
// from that kind's defaults, and `backbone.depth`, `backbone.blocks` and `backbone.scale`, absent
// from the default CNN's JSON, are still known keys.
import Foundation
import Layers

extension TrainingConfiguration {
    /// Keys a configuration may give although the base's JSON leaves them out, each with a
    /// placeholder of its JSON kind (for the merge's type checks): IResNet's `backbone.depth`,
    /// MobileFaceNet's `backbone.blocks` and `backbone.scale`.
    nonisolated(unsafe) static let optionalKeyPlaceholders: [String: Any] = [   // immutable
        "backbone.depth": 50, "backbone.blocks": [1, 4, 6, 2], "backbone.scale": 2,
    ]

    /// The optional keys directly under `path` (`"backbone"` → `["depth"]`).
    static func optionalKeys(under path: String) -> [String] {
        optionalKeyPlaceholders.keys.compactMap { key in
            let prefix = path.isEmpty ? "" : path + "."
            guard key.hasPrefix(prefix) else { return nil }
            let rest = key.dropFirst(prefix.count)
            return rest.contains(".") ? nil : String(rest)
        }
    }

    /// The backbone object the overrides merge into when they name a `backbone.kind` other than
    /// `base`'s: that kind's defaults (`BackboneConfiguration(kind:)`: RGB 112×112, `D` 512,
    /// dropout 0 for the field's backbones, MobileFaceNet's `get_mbf` blocks and scale; no
    /// `depth`, which an IResNet file must give), else
    /// `nil` (the base's own). An unknown kind is left to the decoder, which names the kinds.
    static func baseBackboneObject(for overrides: [String: Any], over base: TrainingConfiguration) -> [String: Any]? {
        guard let backbone = overrides["backbone"] as? [String: Any], let text = backbone["kind"] as? String,
              let kind = BackboneKind(rawValue: text), kind != base.backbone.kind else { return nil }
        var defaults = BackboneConfiguration(kind: kind)
        defaults.depth = nil
        guard let data = try? JSONEncoder().encode(defaults),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
        return object
    }
}
