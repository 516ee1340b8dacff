import Testing
import FaceData
