import Testing
import MarginLosses
