"""AWS adapters: SQS FIFO queues (`sqs`), Secrets Manager (`secrets`), RDS IAM and password
connections (`rds`). boto3 is imported only when first used; never packaged for Google Cloud."""
