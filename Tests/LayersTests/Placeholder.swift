import Testing
import Layers
