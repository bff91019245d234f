"""The versioned model store on disk: manifests, verification before unpickling, publishing."""
