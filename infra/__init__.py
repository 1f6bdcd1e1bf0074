"""AWS CDK app: the API on ECS Fargate behind an ALB, ElastiCache Redis, secrets, autoscaling."""
