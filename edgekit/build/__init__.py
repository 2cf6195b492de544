"""The build pipeline's stages."""
