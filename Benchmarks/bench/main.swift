import ArcFace
print("bench: not yet implemented")
