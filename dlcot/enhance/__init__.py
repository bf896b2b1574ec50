"""DLCoT data enhancement: segment a teacher's long CoT, label and cluster its approaches, simplify it."""
