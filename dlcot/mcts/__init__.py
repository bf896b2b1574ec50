"""Marco-o1 v2 tree-CoT: MCTS over typed thought nodes (tree, search) and the SFT traces and preference pairs
drawn from the trees (extract); `dlcot mcts` (commands)."""
