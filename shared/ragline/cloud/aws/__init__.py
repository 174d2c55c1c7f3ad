"""AWS adapters: SQS FIFO queues (`sqs`), Secrets Manager (`secrets`), RDS IAM and password
connections (`rds`), S3 objects and event notifications (`s3`). boto3 is imported only when
first used; never packaged for Google Cloud."""
