import ArcFace
print("arcface: not yet implemented")
