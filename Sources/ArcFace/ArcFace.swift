// The umbrella module: `import ArcFace` brings in every public module of the package.
@_exported import TensorCore
@_exported import Collectives
@_exported import Layers
@_exported import MarginLosses
@_exported import Optimizers
@_exported import FaceData
@_exported import FaceEvaluation
@_exported import RunConfiguration
@_exported import Checkpointing
@_exported import Inference
@_exported import Reporting
@_exported import Training
