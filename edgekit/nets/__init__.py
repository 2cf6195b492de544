"""Model families edgekit builds from recipes: a timm backbone plus a small head (torch only)."""
