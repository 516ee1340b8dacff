import TensorCore

/// Layers applied one after another; backward runs them in reverse.
public final class Sequential: Layer {
    public let layers: [any Layer]

    public struct Cache: LayerCache {
        let caches: [any LayerCache]
    }

    public init(_ layers: [any Layer]) {
        self.layers = layers
    }

    /// All layers' parameters, in layer order.
    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
    /// All layers' buffers, in layer order.
    public var buffers: [Buffer] { layers.flatMap(\.buffers) }

    public func forward(_ input: Tensor, mode: Mode) -> (output: Tensor, cache: any LayerCache) {
        var x = input
        var caches: [any LayerCache] = []
        caches.reserveCapacity(layers.count)
        for layer in layers {
            let (y, cache) = layer.forward(x, mode: mode)
            caches.append(cache)
            x = y
        }
        return (x, Cache(caches: caches))
    }

    public func backward(_ outputGradient: Tensor, cache: any LayerCache) -> Tensor {
        let cache = layerCache(cache, as: Cache.self, layer: "Sequential")
        precondition(cache.caches.count == layers.count,
                     "Sequential: cache holds \(cache.caches.count) layer caches for \(layers.count) layers")
        var g = outputGradient
        for (layer, layerCache) in zip(layers, cache.caches).reversed() {
            g = layer.backward(g, cache: layerCache)
        }
        return g
    }
}
