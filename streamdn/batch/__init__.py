"""Many files and long files: the plan (files and keyframe segments), the tasks, the executors
(inline, local processes, Ray) and the scheduler that runs them."""
