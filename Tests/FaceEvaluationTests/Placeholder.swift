import Testing
import FaceEvaluation
