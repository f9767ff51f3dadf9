"""The weekly digest "What customers are telling us" (build, fold, sending once)."""
